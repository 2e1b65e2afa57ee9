"""All four panels at once: each panel alone and all four together, on the demo's pages.

Users add the four panels together and keep the toolbar open, so the goals are for the
combination (issue 19):

1. Per demo page, interleaved: the toolbar with our panels off (the baseline), each panel
   alone, all four with this interpreter's defaults (line memory off on 3.10/3.11) and, below
   3.12, all four with line memory ticked on. Goal: all four with the defaults <= x1.25 on
   3.12+, <= x1.3 on 3.11.
2. The fixed cost on the trivial page ``/`` (a template, no query): all four add <= 1 ms.
3. The package's own hooks' share of the sampling profile with all four on (the instances
   hook, Explain's execute wrapper, the line tracer, sampled in the view's thread): <= 2% of
   the samples, summed over the page's requests, read from the stored profile as the panel
   shows it (``sampling.report.own_hooks``); with the defaults, and below 3.12 also with line
   memory ticked on.

4. Where the time of all four goes, per panel and per phase (start, stop, record, the JSON
   check, the store, the sidebar subtitle), in the request thread's CPU time: what is left
   (the hooks inside the view, the toolbar's own per-panel work) is the difference.

Times are the process's CPU time per request (``time.process_time``: every thread, so the
sampler thread's reading of stacks counts), not wall time: on a machine shared with other
jobs, wall time mostly measures the wait for a core.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from debug_toolbar.toolbar import DebugToolbar

from debug_toolbar_perf import base
from debug_toolbar_perf.sampling.report import own_hooks
from debug_toolbar_perf.store import stored_stats

from ..harness import Result, Variant, measure
from .common import ALL_OURS, baseline, getter, panels

COMPARISON = "All four panels together vs each alone (toolbar on, our panels off = x1.00)"
TRIVIAL = ("trivial page (/)", "/")
PAGES = [
    ("categories (a few ms)", "/categories/"),
    ("N+1 products", "/products/n-plus-one/"),
    ("truthy QuerySet", "/reviews/summary/"),
    ("CPU page (n=3000)", "/cpu/?n=3000"),
    ("memory page", "/memory/"),
    ("XSS page", "/xss/"),
]
MODERN = sys.version_info >= (3, 12)
RATIO_GOAL = 1.25 if MODERN else 1.3
FIXED_GOAL_MS = 1.0
OWN_GOAL_PCT = 2.0
ALL_DEFAULTS = "all four, this interpreter's defaults" + ("" if MODERN else " (line memory off)")
ALL_LINE_ON = "all four, line memory ticked on"


def _alone(panel: str) -> Variant:
    return Variant(f"{panel.rsplit('.', 1)[-1]} alone", panels(panel))


def _all_defaults() -> Callable[[], AbstractContextManager[Any]]:
    """All four as a user gets them: line memory's ENABLED_BY_DEFAULT left to the panel."""
    return panels(*ALL_OURS, perf={"LINE_MEMORY": {"ENABLED_BY_DEFAULT": None}})


def variants(quick: bool) -> list[Variant]:
    chosen = [baseline()]
    if not quick:
        chosen += [_alone(p) for p in ALL_OURS]
    chosen.append(Variant(ALL_DEFAULTS, _all_defaults()))
    if not MODERN:
        chosen.append(Variant(ALL_LINE_ON, panels(*ALL_OURS)))
    return chosen


@contextmanager
def _toolbars() -> Iterator[list[DebugToolbar]]:
    """Collect the toolbars the requests inside the block create."""
    created: list[DebugToolbar] = []

    def grab(sender: Any, toolbar: DebugToolbar, **_: Any) -> None:
        created.append(toolbar)

    DebugToolbar._created.connect(grab)
    try:
        yield created
    finally:
        DebugToolbar._created.disconnect(grab)


def own_share(records: list[dict[str, Any]]) -> tuple[float, float, dict[str, float]]:
    """(own-hook samples, all samples, per panel) summed over ``records``."""
    own = total = 0.0
    by_panel: dict[str, float] = {}
    for record in records:
        samples = float(record.get("samples") or 0)
        hooks = own_hooks(record)  # type: ignore[arg-type]  # a stored SamplingRecord
        own += hooks["pct"] * samples / 100.0
        total += samples
        for row in hooks["panels"]:
            by_panel[row["panel"]] = by_panel.get(row["panel"], 0.0) + row["pct"] * samples / 100
    return own, total, by_panel


def sampled_records(path: str, setup: Callable[[], AbstractContextManager[Any]], n: int) -> list:
    """The sampling panel's stored records of ``n`` requests to ``path`` under ``setup``."""
    run = getter(path)
    records = []
    with setup(), _toolbars() as created:
        for _ in range(n):
            run()
        for toolbar in created:
            stats = stored_stats(toolbar.request_id, "SamplingProfilerPanel") or {}
            if stats.get("record"):
                records.append(stats["record"])
    return records


def _share_note(
    path: str, label: str, n: int, setup: Callable[[], AbstractContextManager[Any]], how: str
) -> tuple[str, bool]:
    own, total, by_panel = own_share(sampled_records(path, setup, n))
    pct = 100.0 * own / total if total else 0.0
    parts = ", ".join(f"{name} {100.0 * w / total:.1f}%" for name, w in by_panel.items() if total)
    note = (
        f"{label}: the package's own hooks are {pct:.1f}% of {total:.0f} samples over {n} "
        f"requests with {how} ({parts or 'none'}; goal <= "
        f"{OWN_GOAL_PCT:.0f}%: {'met' if pct <= OWN_GOAL_PCT else 'not met'})."
    )
    return note, pct <= OWN_GOAL_PCT


@contextmanager
def _phase_clock(spent: dict[tuple[str, str], float]) -> Iterator[None]:
    """Charge the request thread's CPU time of each PerfPanel phase to (panel, phase)."""
    clock = time.thread_time
    panel_cls = base.PerfPanel
    guard, record_stats = panel_cls.guard, panel_cls.record_stats
    subtitle, check = panel_cls.nav_subtitle, base.check_json

    def timed_guard(self: Any, stage: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = clock()
        try:
            return guard(self, stage, func, *args, **kwargs)
        finally:
            spent[(self.panel_id, stage)] += clock() - t0

    def timed_store(self: Any, stats: Any) -> None:
        t0 = clock()
        try:
            record_stats(self, stats)
        finally:
            spent[(self.panel_id, "store")] += clock() - t0

    def timed_subtitle(self: Any) -> str:
        t0 = clock()
        try:
            return str(subtitle.fget(self))
        finally:
            spent[(self.panel_id, "sidebar")] += clock() - t0

    def timed_check(value: Any, path: str = "stats") -> None:
        t0 = clock()
        try:
            check(value, path)
        finally:
            spent[("all", "JSON check")] += clock() - t0

    panel_cls.guard = timed_guard  # type: ignore[method-assign]
    panel_cls.record_stats = timed_store  # type: ignore[method-assign]
    panel_cls.nav_subtitle = property(timed_subtitle)  # type: ignore[assignment,method-assign]
    base.check_json = timed_check
    try:
        yield
    finally:
        panel_cls.guard = guard  # type: ignore[method-assign]
        panel_cls.record_stats = record_stats  # type: ignore[method-assign]
        panel_cls.nav_subtitle = subtitle  # type: ignore[method-assign]
        base.check_json = check


def phases(path: str, n: int) -> tuple[float, dict[tuple[str, str], float]]:
    """(request-thread CPU ms per request, ms per request of each (panel, phase)) with all
    four on (line memory ticked on)."""
    run = getter(path)
    spent: dict[tuple[str, str], float] = defaultdict(float)
    with panels(*ALL_OURS)():
        run()
        with _phase_clock(spent):
            t0 = time.thread_time()
            for _ in range(n):
                run()
            total = time.thread_time() - t0
    return total * 1000 / n, {k: v * 1000 / n for k, v in spent.items()}


def _phase_note(path: str, label: str, n: int) -> str:
    total, spent = phases(path, n)
    top = sorted(spent.items(), key=lambda kv: -kv[1])
    named = ", ".join(
        f"{panel.removesuffix('Panel')} {phase} {ms:.2f}" for (panel, phase), ms in top
    )
    return (
        f"{label}: per phase with all four on, line memory ticked on (request-thread CPU, ms "
        f"per request of {total:.1f}): {named}; together {sum(spent.values()):.2f} ms."
    )


def annotate(rows: list[Result], trivial: bool) -> None:
    """Goals on the all-four rows: added ms on the trivial page, the ratio elsewhere."""
    base = next(r for r in rows if r.baseline)
    for r in rows:
        r.extra["ours"] = not r.baseline
        added_ms = (r.median - base.median) * 1000
        if r.baseline:
            continue
        if trivial:
            r.extra["note"] = f"{r.workload}, {r.variant}: {added_ms:+.2f} ms per request."
            if r.variant == ALL_DEFAULTS:
                r.goal = f"<= {FIXED_GOAL_MS:.0f} ms added"
                r.extra["met"] = added_ms <= FIXED_GOAL_MS
        elif r.variant == ALL_DEFAULTS:
            r.goal = f"<= x{RATIO_GOAL}"
            r.extra["met"] = r.ratio <= RATIO_GOAL


def run(quick: bool) -> list[Result]:
    results: list[Result] = []
    chosen = variants(quick)
    pages = [TRIVIAL, *(PAGES[:1] if quick else PAGES)]
    for label, path in pages:
        trivial = (label, path) == TRIVIAL
        rows = measure(
            COMPARISON,
            label,
            getter(path),
            chosen,
            rounds=(3 if quick else (25 if trivial else 9)),
            warmup=2,
            clock=time.process_time,
        )
        annotate(rows, trivial)
        if not trivial:
            n = 2 if quick else 10
            note, met = _share_note(path, label, n, _all_defaults(), ALL_DEFAULTS)
            for r in rows:
                if r.variant == ALL_DEFAULTS:
                    r.extra["note"], r.extra["own_hooks_met"] = note, met
            if not MODERN:
                rows[-1].extra["note"] = _share_note(
                    path, label, n, panels(*ALL_OURS), ALL_LINE_ON
                )[0]
        rows[0].extra["note"] = _phase_note(path, label, 2 if quick else 10)
        results += rows
    return results
