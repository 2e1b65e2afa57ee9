"""A library's router view is followed to the view it hands the request to; a project's
function view is its own handler; the profile hook never outlives the request."""

from __future__ import annotations

import cProfile
import pstats
import sys
from typing import Any

import pytest
from django.test import override_settings

from tests.conftest import run_with_toolbar
from tests.real_apps.conftest import HERE, perf

#: Only the middleware is the project's: the library (and its router) is a third party's.
THIRD_PARTY = perf(PROJECT_PATHS=[str(HERE / "project")])
ROUTER = "tests.real_apps.library.views.router"


@pytest.mark.parametrize(
    ("kind", "handler", "traced"),
    [
        ("list", "tests.real_apps.library.views.BookList.get", "get (list.py)"),
        # A function the router calls directly has started when the hook sees the call:
        # named and profiled, but line memory cannot trace it from its first line.
        ("fn", "tests.real_apps.library.views.book_list", None),
    ],
)
def test_router_is_followed_to_the_handler(
    library_site: Any, kind: str, handler: str, traced: str | None
) -> None:
    with override_settings(DEBUG_TOOLBAR_PERF=THIRD_PARTY):
        run = run_with_toolbar(library_site, f"/route/{kind}/")
    assert sys.getprofile() is None  # the hook went with the request
    assert run.response.status_code == 200
    assert run.stats("LineMemoryPanel")["target"]["label"] == f"{handler} (via {ROUTER})"
    record = run.record("LineMemoryPanel")
    # Never "did not run" for what ran (functions other test modules marked with
    # @profile_memory are registered process-wide and rightly did not run here).
    site = [label for label in record["not_run"] if label.startswith("tests.real_apps.")]
    assert not site, site
    if traced is not None:
        functions = {f["label"]: f for f in record["functions"]}
        assert traced in functions, list(functions)
        assert functions[traced]["why"] == "handler, followed from router"
        assert functions[traced]["calls"] == 1
    notes = run.record("SamplingProfilerPanel")["notes"]
    assert f"{ROUTER} handed the request to {handler}, which did the work (followed)." in notes


def test_a_project_function_view_is_not_watched(library_site: Any) -> None:
    """The library is the project's here: the router is its own handler, nothing followed."""
    run = run_with_toolbar(library_site, "/route/list/")
    assert run.stats("LineMemoryPanel")["target"]["label"] == ROUTER
    assert not any("handed the request" in n for n in run.record("SamplingProfilerPanel")["notes"])


def test_another_profiler_keeps_its_hook(library_site: Any) -> None:
    """cProfile (the toolbar's profiling panel) holds the hook: no following, no breakage.

    From Python 3.12 cProfile runs on sys.monitoring and leaves the profile hook free: both
    run, and the router is followed."""
    profiler = cProfile.Profile()
    with override_settings(DEBUG_TOOLBAR_PERF=THIRD_PARTY):
        profiler.enable()
        try:
            run = run_with_toolbar(library_site, "/route/list/")
        finally:
            profiler.disable()
    assert run.response.status_code == 200
    followed = f"tests.real_apps.library.views.BookList.get (via {ROUTER})"
    expected = followed if sys.version_info >= (3, 12) else ROUTER
    assert run.stats("LineMemoryPanel")["target"]["label"] == expected
    measured = {key[2] for key in pstats.Stats(profiler).stats}  # type: ignore[attr-defined]
    assert {"router", "book_list"} <= measured or {"router", "get"} <= measured, measured
