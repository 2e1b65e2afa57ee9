"""Performance budgets for tests: fail when a view builds too many instances, repeats a
query, scans a table or gets slow - with a message that says where.

::

    from debug_toolbar_perf.testing import perf_budget

    with perf_budget(max_instances={"shop.Product": 100}, max_repeated_query_shape=1,
                     no_full_scans=True):
        client.get("/products/")

The toolbar is forced on for the requests made inside the block (no need for ``DEBUG`` or
``INTERNAL_IPS``), with only the perf panels the limits need; each request is checked
against the limits on its own, from the records the panels store. ``DEBUG`` is left alone,
so the code under test runs as it does in the rest of the suite. pytest users get the
``perf_budget`` fixture and the ``@pytest.mark.perf_budget(...)`` marker
(``debug_toolbar_perf.pytest_plugin``); ``unittest``/Django ``TestCase`` users get
:class:`PerfBudgetMixin`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .budget import Breach, Budget, PerfBudgetExceeded, raise_for
from .runner import ToolbarCapture, capture, parse_panels

__all__ = ["Breach", "Budget", "PerfBudgetExceeded", "PerfBudgetMixin", "perf_budget"]


@contextmanager
def perf_budget(
    *,
    max_instances: Mapping[str, int] | None = None,
    max_total_instances: int | None = None,
    max_repeated_query_shape: int | None = None,
    max_queries: int | None = None,
    no_full_scans: bool = False,
    no_plan_findings: bool = False,
    max_ms: float | None = None,
    panels: str | Iterable[str] | None = None,
    baseline: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    max_growth: float | None = None,
) -> Iterator[ToolbarCapture]:
    """Check every request made in the block against the limits; raise on exit if broken.

    * ``max_instances``: ``{"app_label.Model": n}``, instances built per request;
    * ``max_total_instances``: all models together;
    * ``max_repeated_query_shape``: how often one query shape may run (1 = never repeated);
    * ``max_queries``: SQL statements per request;
    * ``no_full_scans``: no plan finding "full scan of a large table";
    * ``no_plan_findings``: no plan finding at all (scans, sorts, N+1...);
    * ``max_ms``: wall time of the profiled view (the sampling profiler's scope);
    * ``panels``: extra perf panels to run (``"sampling,memory,instances,explain"``);
    * ``baseline`` and ``max_growth``: a run saved by ``profile_request --save FILE`` (its
      path, or its stats by panel name) and the growth allowed against it, e.g. ``0.1``: fail
      when model instances, SQL statements or the view's wall time grow by more than 10%
      (only the figures the saved run recorded), saying what changed (``N+1 ... new``).

    Raises :class:`PerfBudgetExceeded` (an ``AssertionError``). The yielded object's
    ``runs`` holds each request's stored stats, for assertions of your own.
    """
    label = "the baseline"
    if baseline is not None and not isinstance(baseline, Mapping):
        from .render.compare import load

        label, baseline = load(os.fspath(baseline))
    budget = Budget(
        baseline=baseline,
        baseline_label=label,
        max_growth=max_growth,
        max_instances=max_instances or {},
        max_total_instances=max_total_instances,
        max_repeated_query_shape=max_repeated_query_shape,
        max_queries=max_queries,
        no_full_scans=no_full_scans,
        no_plan_findings=no_plan_findings,
        max_ms=max_ms,
    )
    names = budget.panels()
    for extra in parse_panels(panels) if panels else []:
        if extra not in names:
            names.append(extra)
    if not names:
        raise ValueError(
            "perf_budget() needs at least one limit (max_instances=, max_total_instances=, "
            "max_repeated_query_shape=, max_queries=, no_full_scans=, no_plan_findings=, "
            "max_ms=, baseline= with max_growth=) or panels="
        )
    with capture(names) as cap:
        yield cap
    if not cap.runs:
        raise PerfBudgetExceeded(
            "perf_budget: no request went through django-debug-toolbar inside the block. "
            "Make the request inside the `with` block, through the full middleware stack "
            "(django.test.Client or RequestFactory + the WSGI handler), with "
            "debug_toolbar.middleware.DebugToolbarMiddleware in MIDDLEWARE."
        )
    raise_for(budget.check(cap.runs))


class PerfBudgetMixin:
    """``self.assertPerfBudget(...)`` for ``unittest`` / Django ``TestCase`` classes."""

    def assertPerfBudget(self, **limits: Any) -> Any:
        """Context manager: the same limits and failure message as :func:`perf_budget`."""
        return perf_budget(**limits)
