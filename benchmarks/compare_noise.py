"""How often does an unchanged reload show a "significant" change? And what does comparing cost?

Usage: python benchmarks/compare_noise.py [RELOADS] [--output FILE]

Each demo page is loaded RELOADS times through the whole stack with all four perf panels on
(Django's test client, in process, SQLite). Every reload after the first is compared with the
previous one, as the panels do in the browser (``PerfPanel.comparison``: the baseline read back
from the toolbar's store, then the feature's ``diff.py``). Nothing changed between reloads, so
every "significant" verdict is a false alarm. Also measured: the CPU time of one comparison
(store read + diff), the bytes the baseline reference adds to a panel's stored stats, and the
merged profile of a short view reloaded ten times.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PERF_BENCH_PG", "0")
os.environ.setdefault("PERF_BENCH_MARIADB", "0")

PANELS = ("SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel")
PAGES = (
    "/cpu/",
    "/memory/",
    "/hot-loop/",
    "/products/n-plus-one/",
    "/products/fixed/",
    "/reviews/summary/",
    "/reviews/summary/fixed/",
    "/categories/",
)
SHORT_VIEW = "/cpu/?n=1000"


def load(client, path: str):  # type: ignore[no-untyped-def]
    from debug_toolbar.toolbar import DebugToolbar

    made = []

    def grab(sender, toolbar, **kwargs):  # type: ignore[no-untyped-def]
        made.append(toolbar)

    DebugToolbar._created.connect(grab, weak=False)
    try:
        response = client.get(path)
    finally:
        DebugToolbar._created.disconnect(grab)
    assert response.status_code == 200, (path, response.status_code)
    return made[-1].request_id


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    reloads = int(args[0]) if args else 12
    output = None
    if "--output" in sys.argv:
        output = Path(sys.argv[sys.argv.index("--output") + 1])
    from benchmarks.run import setup_django

    setup_django()
    from django.test import Client
    from django.test.utils import override_settings

    from debug_toolbar_perf.store import stored_panel

    client = Client()
    alarms = {p: 0 for p in PANELS}
    compared = {p: 0 for p in PANELS}
    per_page: dict[str, dict[str, int]] = {}
    cost_ms: dict[str, list[float]] = {p: [] for p in PANELS}
    ref_bytes: list[int] = []
    examples: list[str] = []
    config = {"RENDER_PANELS": False, "RESULTS_CACHE_SIZE": 100, "DISABLE_PANELS": set()}
    with override_settings(
        DEBUG_TOOLBAR_CONFIG=config,
        DEBUG_TOOLBAR_PERF={"LINE_MEMORY": {"ENABLED_BY_DEFAULT": True}},
    ):
        for path in PAGES:
            per_page[path] = {p: 0 for p in PANELS}
            load(client, path)  # warm-up: the first request of a page primes caches
            for _ in range(reloads):
                request_id = load(client, path)
                for panel_id in PANELS:
                    panel = stored_panel(request_id, panel_id)
                    stats = panel.get_stats()
                    if not stats.get("record") or not stats.get("baseline"):
                        continue
                    ref_bytes.append(len(json.dumps(stats["baseline"])))
                    t0 = time.thread_time()
                    made, _ = panel.comparison(stats)
                    cost_ms[panel_id].append((time.thread_time() - t0) * 1000)
                    if made is None:
                        continue
                    compared[panel_id] += 1
                    if made.significant:
                        alarms[panel_id] += 1
                        per_page[path][panel_id] += 1
                        examples.append(f"{path} {panel_id}: {made.headline}")
    # The short view with the sampling panel alone (the others ticked off, as a user would).
    alone = {**config, "DISABLE_PANELS": {f"debug_toolbar_perf.panels.{p}" for p in PANELS[1:]}}
    with override_settings(DEBUG_TOOLBAR_CONFIG=alone):
        merged_line = _merged(client, load)
    lines = [
        "# Comparing requests: false alarms on unchanged reloads, and the cost",
        "",
        f"`python benchmarks/compare_noise.py {reloads}` on Python {platform.python_version()}, "
        f"{os.cpu_count()} cores shared with other jobs, SQLite, all four perf panels on, "
        "in process (Django's test client). Each page: one warm-up load, then "
        f"{reloads} reloads, each compared with the previous one by every panel.",
        "",
        "| panel | comparisons | significant (false alarms) | CPU per comparison, median (max) |",
        "|---|---|---|---|",
    ]
    for panel_id in PANELS:
        costs = cost_ms[panel_id] or [0.0]
        lines.append(
            f"| {panel_id} | {compared[panel_id]} | {alarms[panel_id]} "
            f"({100 * alarms[panel_id] / max(compared[panel_id], 1):.1f}%) | "
            f"{statistics.median(costs):.2f} ms ({max(costs):.2f} ms) |"
        )
    lines += [
        "",
        "False alarms per page: "
        + (
            "; ".join(
                f"`{p}` "
                + ", ".join(f"{k.replace('Panel', '')} {v}" for k, v in counts.items() if v)
                for p, counts in per_page.items()
                if any(counts.values())
            )
            or "none."
        ),
        "",
        f"Baseline reference stored per panel: {min(ref_bytes or [0])}–{max(ref_bytes or [0])} "
        "bytes of JSON (request id, method, path, time).",
        "",
        merged_line,
        "",
    ]
    if examples:
        lines += ["The false alarms:", "", *[f"- {e}" for e in examples[:20]], ""]
    text = "\n".join(lines)
    print(text)
    if output:
        output.write_text(text)
    return 0


def _merged(client, load) -> str:  # type: ignore[no-untyped-def]
    """A short view reloaded ten times (sampling panel alone): per-request samples, and the
    merged profile's top project function."""
    from debug_toolbar_perf.sampling.report import top_project_function
    from debug_toolbar_perf.store import stored_panel

    ids = [load(client, SHORT_VIEW) for _ in range(10)]
    panel = stored_panel(ids[-1], "SamplingProfilerPanel")
    stats = panel.get_stats()
    singles = []
    for request_id in ids:
        record = stored_panel(request_id, "SamplingProfilerPanel").get_stats()["record"]
        singles.append((record["samples"], record["duration_ms"], record.get("cpu_ms") or 0.0))
    t0 = time.thread_time()
    merged = panel.merged(stats)
    merge_ms = (time.thread_time() - t0) * 1000
    top = top_project_function(merged["record"]) if merged else None
    return (
        f"Merged profile: `{SHORT_VIEW}` with the sampling panel alone (a view of "
        f"{statistics.median(d for _, d, _ in singles):.1f} ms wall, "
        f"{statistics.median(c for _, _, c in singles):.1f} ms CPU, medians) reloaded 10 times: "
        f"{statistics.median(s for s, _, _ in singles):.0f} samples per request (median), "
        f"{merged['samples'] if merged else 0:.0f} merged over "
        f"{merged['requests'] if merged else 0} requests; "
        "the merged profile's top project function: "
        f"`{top['name'] if top else None}` ({top['self_pct'] if top else 0:.0f}% self). "
        f"Reading the 10 records back and merging them took {merge_ms:.1f} ms of CPU."
    )


if __name__ == "__main__":
    raise SystemExit(main())
