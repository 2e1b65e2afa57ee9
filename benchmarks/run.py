"""Measure every panel's cost against the tools users would otherwise pick.

    python -m benchmarks            # full run (~10 min), writes docs/benchmarks/results.{md,png}
    python -m benchmarks --quick    # under a minute, writes docs/benchmarks/results-quick.*

Requests go through the whole Django stack with the toolbar on (Django's test client,
in process), so the baseline is "toolbar on, our panels off".
"""

from __future__ import annotations

import argparse
import os
import pkgutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    for alias in list(settings.DATABASES):
        if alias != "default" and not _ensure_database(alias):
            del settings.DATABASES[alias]  # connections.settings is this same dict
            continue
        call_command("migrate", database=alias, interactive=False, verbosity=0)
    from shop.seed import is_seeded, seed

    if not is_seeded():
        print("[bench] seeding the SQLite benchmark database")
        seed()


def _ensure_database(alias: str) -> bool:
    """Connect to ``alias``, creating its database on the server if needed; False if no server."""
    from django.db import connections

    connection = connections[alias]
    try:
        connection.ensure_connection()
        return True
    except Exception:
        pass
    try:
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {connection.settings_dict['NAME']}")
        connection.close()
        connection.ensure_connection()
        return True
    except Exception as exc:  # server not reachable: compare on SQLite only
        print(f"[bench] database {alias!r} unavailable ({exc.__class__.__name__}); skipped")
        return False


def check_only(only: list[str] | None, parser: argparse.ArgumentParser) -> None:
    """An unknown ``--only`` name is a usage error, not a run that silently measures nothing.

    Read from the suites folder (a suite defines run()): importing them needs Django set up."""
    folder = Path(__file__).parent / "suites"
    names = sorted(
        m.name
        for m in pkgutil.iter_modules([str(folder)])
        if "\ndef run(" in (folder / f"{m.name}.py").read_text()
    )
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(names)}")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="few rounds, small sizes (< 1 min)")
    parser.add_argument("--only", nargs="*", help="run only these suites")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    check_only(args.only, parser)

    setup_django()
    from . import suites

    selected = [s for s in suites.ALL if not args.only or s.__name__.split(".")[-1] in args.only]
    results = []
    started = time.perf_counter()
    for suite in selected:
        name = suite.__name__.split(".")[-1]
        print(f"[bench] {name} ...", flush=True)
        t0 = time.perf_counter()
        suite_results = suite.run(quick=args.quick)
        for r in suite_results:
            print(
                f"    {r.workload:<38} {r.variant:<44} median {r.median * 1000:8.1f} ms"
                f"  {r.ratio_text}",
                flush=True,
            )
        print(f"    ({time.perf_counter() - t0:.1f} s)")
        results.extend(suite_results)

    from .report import write

    md, png = write(results, args.output, args.quick)
    print(f"[bench] wrote {md} and {png} in {time.perf_counter() - started:.0f} s")
    return 0
