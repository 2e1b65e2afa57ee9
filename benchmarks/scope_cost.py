"""Cost of the view's scope work: blame (instances, Explain), template frames (sampler),
and the thread sampler's achieved rate.

Usage: python benchmarks/scope_cost.py [ROUNDS]

Through the real toolbar with the test client, on the real-app test site (tests/real_apps):
the library list whose template follows a foreign key per row (an N+1 issued while
rendering) and the admin changelist. Interleaved rounds, thread CPU time of the request:

* instances + Explain panels with the blame rule vs the same panels with the old walk
  (the rule switched off: ``is_boundary`` never true, no template node recognised);
* the sampling panel with template frames named vs plain code frames: median request time,
  and the sampler's hold of the GIL per tick, which is what naming adds to;
* the sampler's achieved rate (samples per second of request) at 2 ms and 1 ms intervals.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from debug_toolbar.toolbar import DebugToolbar  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from debug_toolbar_perf.explain import capture  # noqa: E402
from debug_toolbar_perf.instances import collector  # noqa: E402
from debug_toolbar_perf.sampling import thread  # noqa: E402

PANELS = "debug_toolbar_perf.{}.panel.{}"
SAMPLING = PANELS.format("sampling", "SamplingProfilerPanel")
INSTANCES = PANELS.format("instances", "ModelInstancesPanel")
EXPLAIN = PANELS.format("explain", "ExplainPanel")
LINE_MEMORY = PANELS.format("line_memory", "LineMemoryPanel")
OTHERS = {
    "debug_toolbar.panels.profiling.ProfilingPanel",
    "debug_toolbar.panels.redirects.RedirectsPanel",
}
HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
PAGES = {"template N+1 (/books/)": "/books/", "admin changelist": "/admin/library/book/"}


def site(enabled: set[str], **perf: Any) -> override_settings:
    disabled = OTHERS | ({SAMPLING, INSTANCES, EXPLAIN, LINE_MEMORY} - enabled)
    return override_settings(
        ROOT_URLCONF="tests.real_apps.urls",
        DEBUG_TOOLBAR_CONFIG={**settings.DEBUG_TOOLBAR_CONFIG, "DISABLE_PANELS": disabled},
        DEBUG_TOOLBAR_PERF={"PROJECT_PATHS": [os.path.join(HERE, "real_apps")], **perf},
    )


@contextmanager
def old_walk() -> Iterator[None]:
    """The walk before the blame rule: to the first project frame, whatever it is."""
    saved = (collector.is_boundary, collector.RENDER_ANNOTATED, capture.blame)
    collector.is_boundary = lambda code: False  # type: ignore[assignment]
    collector.RENDER_ANNOTATED = None  # type: ignore[assignment]
    capture.blame = lambda *a, **k: None  # type: ignore[assignment]
    try:
        yield
    finally:
        collector.is_boundary, collector.RENDER_ANNOTATED, capture.blame = saved


@contextmanager
def plain_frames() -> Iterator[None]:
    """The sampler before template frames: every frame is its code."""
    saved = thread.ThreadSampler._push
    thread.ThreadSampler._push = lambda self, parent, fr: self._node(parent, fr.f_code)  # type: ignore[method-assign]
    try:
        yield
    finally:
        thread.ThreadSampler._push = saved  # type: ignore[method-assign]


def request(client: Client, path: str) -> tuple[float, DebugToolbar]:
    made: list[DebugToolbar] = []

    def grab(sender: Any, toolbar: DebugToolbar, **_: Any) -> None:
        made.append(toolbar)

    DebugToolbar._created.connect(grab)
    try:
        t0 = time.thread_time()
        response = client.get(path)
        spent = time.thread_time() - t0
    finally:
        DebugToolbar._created.disconnect(grab)
    assert response.status_code == 200, response.status_code
    return spent, made[-1]


def compare(
    client: Client, rounds: int, variants: dict[str, Callable[[], Any]], path: str
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(rounds + 1):
        for name, make in variants.items():
            with make():
                spent, _ = request(client, path)
            if i:  # round 0 warms up
                times[name].append(spent)
    return times


def sampler_figures(
    client: Client, path: str, interval_ms: float, rounds: int, fixed: bool = True
) -> str:
    rates, holds = [], []
    thread._Hub.FIXED_SCHEDULE = fixed
    with site({SAMPLING}, SAMPLING={"ENGINE": "thread", "INTERVAL_MS": interval_ms}):
        for _ in range(rounds):
            _, toolbar = request(client, path)
            record = toolbar.get_panel_by_id("SamplingProfilerPanel").get_stats()["record"]
            rates.append(record["rate_hz"])
            all_samples = record["samples"] + record["outside"]
            if all_samples:
                holds.append(record["overhead_ms"]["sampler_hold"] / all_samples * 1000)
    thread._Hub.FIXED_SCHEDULE = True
    schedule = "fixed schedule" if fixed else "after each tick"
    return (
        f"{schedule}, interval {interval_ms} ms: rate median {statistics.median(rates):.0f}/s "
        f"(min {min(rates):.0f}, max {max(rates):.0f}); GIL hold per sample "
        f"{statistics.median(holds):.1f} us"
    )


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    setup_test_environment()
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    from tests.real_apps.library.models import seed

    seed(authors=20, books=100)
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))
    print(f"Python {sys.version.split()[0]}, {rounds} rounds, thread CPU time per request")
    for label, path in PAGES.items():
        variants: dict[str, Callable[[], Any]] = {
            "toolbar alone": lambda: site(set()),
            "instances+explain, old walk": lambda: _both(site({INSTANCES, EXPLAIN}), old_walk()),
            "instances+explain, blame rule": lambda: site({INSTANCES, EXPLAIN}),
            "sampling, plain frames": lambda: _both(site({SAMPLING}), plain_frames()),
            "sampling, template frames": lambda: site({SAMPLING}),
        }
        times = compare(client, rounds, variants, path)
        base = statistics.median(times["toolbar alone"])
        print(f"\n{label}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:<32} median {median * 1000:7.2f} ms  x{median / base:.2f}")
    print("\nthread sampler on the template N+1 page (100 rows x 8 ms in the template):")
    for interval in (2.0, 1.0):
        for fixed in (False, True):
            print("  " + sampler_figures(client, "/books/", interval, max(5, rounds // 3), fixed))


@contextmanager
def _both(*managers: Any) -> Iterator[None]:
    with ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        yield


if __name__ == "__main__":
    main()
