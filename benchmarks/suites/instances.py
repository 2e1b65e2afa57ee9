"""ModelInstancesPanel's counting hook against Pympler's ClassTracker, as the work grows.

Workload: build n ``Review`` instances (a model of four fields) from querysets over the
seeded 20,000-row table, as a view does (``list(Review.objects.all()[:k])``, passes of at most
20,000 rows, each pass dropped before the next so memory stays flat), for n = 1k, 10k, 100k
and 1M. Variants, interleaved round by round in one process:

* no hook installed (baseline);
* our hook counting per model with the panel's defaults (size and alive samples), sites off;
* the same with call-site attribution of every instance (``INSTANCES.SITES``, the default);
* a plain ``post_init`` receiver doing the same counting (the design we did not take);
* Pympler's ``ClassTracker.track_class(Review)`` (what its own toolbar panel does).

The hook and collector are the panel's (``engines/instances.py``); the end-of-request record
(Pympler ``asizeof`` of the size sample, the young-generation collection, stacks to JSON) is
not in these rows: it is in the whole-request comparison (toolbar alone vs the panel, on a
page of 50 instances and one of 20,001). Then: the 1st vs the 1,000th request through the
toolbar with the panel on, to show no cost accumulates across requests.

Times are the thread's CPU time (``time.thread_time``): see ``CLOCK``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from ..harness import Result, Variant, measure
from .common import PERF, getter, panels

GOAL_COUNT = "≤ 10% (goal ≤ 5%)"
GOAL_SITES = "≤ 25%"
PASS = 20_000
# n -> (rounds, warm-up rounds); 1M runs after the smaller sizes warmed everything up.
FULL = {1_000: (41, 3), 10_000: (15, 1), 100_000: (7, 1), 1_000_000: (3, 0)}
QUICK = {1_000: (9, 1), 10_000: (3, 1)}
#: Thread CPU time, not wall time: the work is single-threaded and in process (SQLite), and
#: on a 2-core machine shared with other jobs wall time mostly measures waiting for a CPU.
CLOCK = time.thread_time
CLOCK_NOTE = "Times are this thread's CPU time (time.thread_time), not wall time."


def _builder(n: int) -> Callable[[], None]:
    from shop.models import Review

    def run() -> None:
        left = n
        while left:
            k = min(left, PASS)
            objs = list(Review.objects.all()[:k])
            if len(objs) != k:
                raise RuntimeError(f"expected {k} reviews, got {len(objs)}")
            left -= k
            del objs

    return run


def _no_hook() -> AbstractContextManager[Any]:
    from debug_toolbar_perf.instances import hook as eng_hook

    @contextmanager
    def cm() -> Iterator[None]:
        eng_hook.uninstall()
        yield

    return cm()


def _counting(n: int, sites: bool) -> Callable[[], AbstractContextManager[Any]]:
    @contextmanager
    def cm() -> Iterator[None]:
        from debug_toolbar_perf.conf import get_config
        from debug_toolbar_perf.instances import collector as eng
        from debug_toolbar_perf.instances import hook as eng_hook
        from shop.models import Review

        cfg = get_config()["INSTANCES"]
        collector = eng.Collector(
            capture_sites=sites,
            site_every=int(cfg["STACK_SAMPLE_EVERY"]),
            size_sample=int(cfg["SIZE_SAMPLE"]),
            alive_sample=int(cfg["ALIVE_SAMPLE"]),
        )
        with eng_hook.counting(collector):
            yield
        if collector.counts.get(Review) != n or collector.hook_error:
            raise RuntimeError(f"counted {collector.counts} ({collector.hook_error}), built {n}")
        if sites and sum(s.count for s in collector.sites.values()) != n:
            raise RuntimeError("call sites do not add up to the instances built")

    return cm


def _receiver(n: int) -> Callable[[], AbstractContextManager[Any]]:
    """The alternative design: a ``post_init`` receiver counting per model, gated by a
    ContextVar like our hook (Django's ``Signal.send`` then runs its receiver machinery for
    every instance)."""

    @contextmanager
    def cm() -> Iterator[None]:
        import contextvars

        from django.db.models.signals import post_init

        from debug_toolbar_perf.instances import hook as eng_hook
        from shop.models import Review

        eng_hook.uninstall()
        var: contextvars.ContextVar[dict[Any, int] | None] = contextvars.ContextVar(
            "bench_receiver", default=None
        )
        current = var.get

        def receiver(sender: Any, **kwargs: Any) -> None:
            counts = current()
            if counts is not None:
                counts[sender] = counts.get(sender, 0) + 1

        counts: dict[Any, int] = {}
        post_init.connect(receiver, weak=False, dispatch_uid="bench-instances-receiver")
        token = var.set(counts)
        try:
            yield
        finally:
            var.reset(token)
            post_init.disconnect(dispatch_uid="bench-instances-receiver")
        if counts.get(Review) != n:
            raise RuntimeError(f"the receiver counted {counts}, built {n}")

    return cm


@contextmanager
def _class_tracker() -> Iterator[None]:
    from pympler.classtracker import ClassTracker

    from debug_toolbar_perf.instances import hook as eng_hook
    from shop.models import Review

    eng_hook.uninstall()
    tracker = ClassTracker()
    tracker.track_class(Review)
    try:
        yield
    finally:
        tracker.detach_all()
        tracker.clear()


def _growth(quick: bool) -> list[Result]:
    from debug_toolbar_perf.instances import hook as eng_hook
    from shop.models import Review

    have = Review.objects.count()
    if have < PASS:
        raise RuntimeError(f"the benchmark database holds {have} reviews; expected {PASS:,}")
    try:
        import pympler  # noqa: F401

        pympler_ok = True
    except ImportError:
        pympler_ok = False
    results: list[Result] = []
    try:
        for n, (rounds, warmup) in (QUICK if quick else FULL).items():
            variants = [
                Variant("no hook", _no_hook, baseline=True),
                Variant("ModelInstancesPanel counting (sites off)", _counting(n, False)),
                Variant("ModelInstancesPanel counting + call sites", _counting(n, True)),
                Variant("a post_init receiver counting per model", _receiver(n)),
            ]
            if pympler_ok:
                variants.append(Variant("Pympler ClassTracker.track_class", _class_tracker))
            rows = measure(
                "ModelInstancesPanel vs Pympler ClassTracker: building n instances",
                f"{n:,} Review instances from querysets",
                _builder(n),
                variants,
                rounds=rounds,
                warmup=warmup,
                clock=CLOCK,
            )
            base = next(r for r in rows if r.baseline)
            for r in rows:
                per = (r.median - base.median) / n * 1e6
                if r.variant.startswith("ModelInstancesPanel"):
                    sites = "call sites" in r.variant
                    r.extra["ours"] = True
                    r.goal = GOAL_SITES if sites else GOAL_COUNT
                    r.extra["met"] = r.ratio <= (1.25 if sites else 1.10)
                if not r.baseline:
                    r.extra["note"] = (
                        f"{n:,}: {r.variant} adds {per:.2f} us per instance "
                        f"(baseline {base.median / n * 1e6:.2f} us per instance built). "
                        + CLOCK_NOTE
                    )
            if not pympler_ok:
                base.extra["note"] = "Pympler is not installed: ClassTracker was skipped."
            results += rows
    finally:
        eng_hook.uninstall()  # the panel installs it again on its next request
    return results


def _requests(quick: bool) -> list[Result]:
    n = 100 if quick else 1000
    path = "/products/published/"  # ~10 ms, builds 50 Product instances
    results: list[Result] = []
    for label, setup in (
        ("toolbar alone", panels()),
        ("toolbar + ModelInstancesPanel", panels(PERF + "ModelInstancesPanel")),
    ):
        with setup():
            get = getter(path)
            times: list[float] = []
            for _ in range(n):
                t0 = CLOCK()
                get()
                times.append(CLOCK() - t0)
        first = Result(
            f"ModelInstancesPanel: 1st vs {n:,}th request ({path})",
            label,
            "requests 1–10",
            times[:10],
            baseline=True,
        )
        last = Result(
            first.comparison, label, f"requests {n - 9:,}–{n:,}", times[-10:], goal="no growth"
        )
        first.ratio = 1.0
        last.ratio = statistics.median(last.times) / statistics.median(first.times)
        ours = "ModelInstancesPanel" in label
        last.extra.update(ours=ours, met=last.ratio <= 1.10)
        if not ours:
            last.goal = ""
        last.extra["note"] = (
            f"{label}: {n:,} requests in a row on one test client (not interleaved: the point "
            f"is the order); 'met' means the last 10 are within 10% of the first 10. " + CLOCK_NOTE
        )
        results += [first, last]
    return results


PAGES = [
    ("50 Products (/products/published/)", "/products/published/"),
    ("20,001 Reviews (/reviews/summary/)", "/reviews/summary/"),
]


def _per_request(quick: bool) -> list[Result]:
    """What one request pays in all: start, the hook, and the end-of-request record (sizes
    of the sample, the young-generation collection, call-site stacks to JSON)."""
    results: list[Result] = []
    sites_off = {"INSTANCES": {"SITES": False}}
    for label, path in PAGES[:1] if quick else PAGES:
        rows = measure(
            "ModelInstancesPanel: whole requests vs the toolbar alone",
            label,
            getter(path),
            [
                Variant("toolbar alone", panels(), baseline=True),
                Variant("+ ModelInstancesPanel (defaults)", panels(PERF + "ModelInstancesPanel")),
                Variant(
                    "+ ModelInstancesPanel, call sites off",
                    panels(PERF + "ModelInstancesPanel", perf=sites_off),
                ),
            ],
            rounds=3 if quick else 15,
            clock=CLOCK,
        )
        base = next(r for r in rows if r.baseline)
        for r in rows:
            r.extra["ours"] = not r.baseline
            if not r.baseline:
                r.extra["note"] = (
                    f"{label}: {r.variant} adds {(r.median - base.median) * 1000:.2f} ms per "
                    f"request. " + CLOCK_NOTE
                )
        results += rows
    return results


def run(quick: bool) -> list[Result]:
    return [*_growth(quick), *_per_request(quick), *_requests(quick)]
