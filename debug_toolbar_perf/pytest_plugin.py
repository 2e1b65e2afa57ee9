"""pytest plugin: the ``perf_budget`` fixture and ``@pytest.mark.perf_budget(...)`` marker.

Registered through the ``pytest11`` entry point, so it loads in every pytest run of an
environment where the package is installed: it imports nothing from Django until a test
actually uses the fixture or the marker, and does nothing else.

::

    def test_product_list(client, perf_budget):
        with perf_budget(max_instances={"shop.Product": 100}):
            client.get("/products/")

    @pytest.mark.perf_budget(max_repeated_query_shape=1, no_full_scans=True)
    def test_product_list_queries(client):
        client.get("/products/")  # every request the test makes is checked
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import suppress
from typing import Any

import pytest

MARKER = "perf_budget"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**limits): fail the test when a request it makes breaks the limits "
        "(max_instances={'app.Model': n}, max_total_instances, max_repeated_query_shape, "
        "max_queries, no_full_scans, no_plan_findings, max_ms) - django-debug-toolbar-perf",
    )


@pytest.fixture
def perf_budget() -> Any:
    """The :func:`debug_toolbar_perf.testing.perf_budget` context manager."""
    from debug_toolbar_perf.testing import perf_budget as manager

    return manager


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        yield
        return
    if marker.args:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{MARKER} takes keyword arguments only, "
            f"e.g. @pytest.mark.{MARKER}(max_queries=5)"
        )
    from debug_toolbar_perf.testing import perf_budget as manager

    budget = manager(**marker.kwargs)
    budget.__enter__()
    outcome = yield
    if outcome.excinfo is not None:
        with suppress(BaseException):
            budget.__exit__(*outcome.excinfo)  # the test's own failure wins
        return
    try:
        budget.__exit__(None, None, None)
    except AssertionError as exc:
        outcome.force_exception(exc)
