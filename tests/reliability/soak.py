"""Long RSS runs of a real server: a plateau or a leak? (A tool, not a test: minutes per run.)

Starts the demo under gunicorn (1 gthread worker x 8 threads, the toolbar's default
RESULTS_CACHE_SIZE of 25) once per variant, drives it with 16 concurrent clients over the
cheap demo pages (every 5th request also renders the perf panels that are on, as the memory
test does; with ours off, the toolbar's SQL and templates panels) and reads the worker's
RSS every ``--every`` requests, with what the process holds at that point
(``/r/memstats/``: gc objects by type, pymalloc blocks, glibc heap in use vs free, this
package's module-level caches, the toolbar store). At the end it returns free heap to the
OS (malloc_trim) to tell fragmentation from live data.

    /tmp/venv313/bin/python -m tests.reliability.soak --requests 4000 \\
        --variant vmprof --variant thread --variant none

Run it from the repository root with the interpreter to measure (its gunicorn is used).
``--tracemalloc 8`` starts the server with PYTHONTRACEMALLOC=8 and prints the top
allocation growth between the first checkpoint after ``--warmup`` and the end;
``--env MALLOC_ARENA_MAX=2`` passes an environment variable to the server.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.reliability.test_servers import (
    CHEAP,
    PANELS,
    free_port,
    get,
    panel_html,
    rss_kib,
    seed_database,
    start,
    stop,
    worker_pid,
)

VARIANTS: dict[str, dict[str, str]] = {
    "vmprof": {"PERF_SAMPLING_ENGINE": "vmprof"},
    "thread": {"PERF_SAMPLING_ENGINE": "thread"},
    "none": {"PERF_PANELS": "none"},
    "sampling-vmprof": {"PERF_PANELS": "SamplingProfilerPanel", "PERF_SAMPLING_ENGINE": "vmprof"},
    "sampling-thread": {"PERF_PANELS": "SamplingProfilerPanel", "PERF_SAMPLING_ENGINE": "thread"},
    "line-memory": {"PERF_PANELS": "LineMemoryPanel"},
    "instances": {"PERF_PANELS": "ModelInstancesPanel"},
    "explain": {"PERF_PANELS": "ExplainPanel"},
}


def drive(base: str, n: int, panels: tuple[str, ...]) -> list[str]:
    """n cheap pages from 16 concurrent clients; every 5th also renders ``panels``."""
    errors: list[str] = []

    def one(i: int) -> None:
        page = CHEAP[i % len(CHEAP)]
        try:
            _, body = get(base + page)
            if i % 5 == 0:
                request_id = re.search(rb'data-request-id="([0-9a-f]+)"', body).group(1)
                for panel in panels:
                    panel_html(base, request_id.decode(), panel)
        except Exception as exc:
            errors.append(f"{page}: {type(exc).__name__}: {exc}"[:300])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(n)))
    return errors


def memstats(base: str, **query: str) -> dict[str, Any]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    _, body = get(f"{base}/r/memstats/?{qs}")
    return json.loads(body)


def slope_mib_per_1000(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of RSS (KiB) over requests, in MiB per 1,000 requests."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return sxy / sxx * 1000 / 1024 if sxx else 0.0


def run(variant: str, db: Path, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    env = dict(VARIANTS[variant])
    if args.tracemalloc:
        env["PYTHONTRACEMALLOC"] = str(args.tracemalloc)
    env.update(item.split("=", 1) for item in args.env or ())
    port = free_port()
    log = log_dir / f"{variant}.log"
    proc = start("gthread", db, port, log, None, **env)
    base = f"http://127.0.0.1:{port}"
    pid = worker_pid(proc)
    ours = env.get("PERF_PANELS", "all")
    # With our panels off, the toolbar's own SQL and templates panels are rendered instead.
    panels = {"all": PANELS, "none": ("SQLPanel", "TemplatesPanel")}.get(ours, (ours,))
    points: list[tuple[int, int]] = []
    checkpoints: list[dict[str, Any]] = []
    errors: list[str] = []
    started = time.monotonic()
    try:
        done = 0
        while done < args.requests:
            errors += drive(base, args.every, panels)
            done += args.every
            rss = rss_kib(pid)
            points.append((done, rss))
            query = {}
            if args.tracemalloc and done == args.warmup:
                query["snapshot"] = "base"
            elif args.tracemalloc and done >= args.requests:
                query["snapshot"] = "diff"
            stats = memstats(base, **query)
            stats["requests"] = done
            checkpoints.append(stats)
            ours = sum(stats["ours"].values())
            print(
                f"{variant:>16} {done:6} req  RSS {rss / 1024:7.1f} MiB  "
                f"heap in use {stats['mallinfo'].get('uordblks', 0) / 2**20:6.1f} MiB "
                f"free {stats['mallinfo'].get('fordblks', 0) / 2**20:6.1f} MiB  "
                f"pymalloc {stats['pymalloc'].get('arenas', 0):4} arenas "
                f"{stats['pymalloc'].get('allocated_bytes', 0) / 2**20:5.1f} MiB used  "
                f"anon {stats['status'].get('RssAnon', 0) / 1024:6.1f} MiB  "
                f"blocks {stats['allocated_blocks']:8}  gc {stats['gc_objects']:7}  "
                f"ours {ours:6}  store {stats['store_requests']}  fds {stats['fds']}",
                flush=True,
            )
        trimmed = memstats(base, trim="1")
    finally:
        stop(proc)
    after = [p for p in points if p[0] > args.warmup]
    return {
        "variant": variant,
        "python": sys.version.split()[0],
        "seconds": round(time.monotonic() - started),
        "errors": errors[:20],
        "points": points,
        "slope_after_warmup_mib_per_1000": round(slope_mib_per_1000(after), 2),
        "trim": {
            k: trimmed[k]
            for k in ("rss_kib", "rss_kib_after_trim", "mallinfo", "pymalloc", "status")
        },
        "first": checkpoints[0],
        "last": checkpoints[-1],
    }


def type_growth(first: dict[str, Any], last: dict[str, Any]) -> list[tuple[str, int]]:
    a, b = dict(first["types"]), dict(last["types"])
    growth = [(t, b.get(t, 0) - a.get(t, 0)) for t in set(a) | set(b)]
    return sorted((g for g in growth if g[1]), key=lambda g: -abs(g[1]))[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--tracemalloc", type=int, default=0)
    parser.add_argument(
        "--env", action="append", help="NAME=value for the server (e.g. MALLOC_ARENA_MAX=2)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    variants = args.variant or ["vmprof", "thread", "none"]
    tmp = Path(tempfile.mkdtemp(prefix="perf-soak-"))
    db = seed_database(tmp / "demo.sqlite3")
    results = []
    for variant in variants:
        result = run(variant, db, args, tmp)
        results.append(result)
        first, last = result["points"][0], result["points"][-1]
        print(
            f"== {variant}: RSS {first[1] / 1024:.1f} MiB at {first[0]} -> "
            f"{last[1] / 1024:.1f} MiB at {last[0]}; slope after {args.warmup}: "
            f"{result['slope_after_warmup_mib_per_1000']} MiB/1,000 req; after malloc_trim "
            f"{result['trim']['rss_kib_after_trim'] / 1024:.1f} MiB; errors {len(result['errors'])}"
        )
        print(f"   gc types grown: {type_growth(result['first'], result['last'])}")
        grown = {
            k: v - result["first"]["ours"].get(k, 0)
            for k, v in result["last"]["ours"].items()
            if v != result["first"]["ours"].get(k, 0)
        }
        print(f"   our containers grown: {grown}")
        for g in result["last"].get("growth", [])[:10]:
            print(f"   +{g['kib']} KiB ({g['count']} blocks) {' <- '.join(reversed(g['where']))}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    print(f"logs and database in {tmp}")


if __name__ == "__main__":
    main()
