"""Cost of the ExplainPanel: per distinct shape, and on a page of 1,000 queries of 3 shapes.

Run: ``python benchmarks/bench_explain.py [--rounds 15]``. For every reachable engine
(SQLite, PostgreSQL, MariaDB on 127.0.0.1), in one process, interleaved round by round:

* ``per shape``: the time ``explain_all`` adds for one distinct shape of a primary-key
  lookup (EXPLAIN on a raw cursor + parsing), median of many runs;
* ``1000 queries / 3 shapes``: the page's statements alone (baseline), with the panel's
  capture + 3 EXPLAINs + record, and with an EXPLAIN after every statement (what
  explaining each query, as django-silk does, costs). Ratios are of medians in this run.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--shape-runs", type=int, default=300)
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connections

    aliases = [a for a in ("default", "postgres", "mariadb") if a in connections]
    old_names = {}
    for alias in aliases:
        conn = connections[alias]
        if conn.vendor != "sqlite":
            conn.settings_dict.setdefault("TEST", {})["NAME"] = f"test_perf_bench_explain_{alias}"
        old_names[alias] = conn.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        for alias in aliases:
            _seed(alias)
            run_alias(alias, args.rounds, args.shape_runs)
    finally:
        for alias in aliases:
            connections[alias].creation.destroy_test_db(old_names[alias], verbosity=0)


def _seed(alias: str) -> None:
    from shop.models import Category, Product

    cats = Category.objects.using(alias).bulk_create([Category(name=f"c{i}") for i in range(20)])
    Product.objects.using(alias).bulk_create(
        [Product(name=f"p{i}", category=cats[i % 20], price=1) for i in range(3000)]
    )


def run_alias(alias: str, rounds: int, shape_runs: int) -> None:
    from django.db import connections
    from shop.models import Category, Product

    from debug_toolbar_perf.engines.explain.capture import CaptureSession, statement_kind
    from debug_toolbar_perf.engines.explain.vendors import vendor_for

    conn = connections[alias]
    pks = list(Product.objects.using(alias).values_list("pk", flat=True)[:500])
    cat_pks = list(Category.objects.using(alias).values_list("pk", flat=True))

    # -- per distinct shape, indexed lookup ---------------------------------------------
    per_shape = []
    for i in range(shape_runs):
        session = CaptureSession([alias])
        session.start()
        Product.objects.using(alias).filter(pk=pks[i % len(pks)]).first()
        session.stop_capture()
        t0 = time.perf_counter()
        session.explain_all(50, 1_000_000)
        per_shape.append(time.perf_counter() - t0)
        assert session.stats.explains == 1 and session.stats.size_lookups == 0
    med = statistics.median(per_shape) * 1000
    print(
        f"{conn.vendor:<10} added per distinct shape (pk lookup): median {med:.3f} ms, "
        f"p90 {sorted(per_shape)[int(0.9 * len(per_shape))] * 1000:.3f} ms "
        f"({shape_runs} runs)"
    )

    # -- 1,000 queries of 3 shapes ----------------------------------------------------------
    def page() -> None:
        for i in range(334):
            Category.objects.using(alias).filter(pk=cat_pks[i % len(cat_pks)]).first()
            Product.objects.using(alias).filter(pk=pks[i % len(pks)]).first()
            list(Product.objects.using(alias).filter(category_id=cat_pks[i % 20])[:3])

    def baseline() -> dict[str, Any]:
        page()
        return {}

    def panel() -> dict[str, Any]:
        session = CaptureSession([alias])
        session.start()
        try:
            page()
        finally:
            session.stop_capture()
        t0 = time.perf_counter()
        session.explain_all(50, 1_000_000)
        record = session.to_record(50)
        return {"explains": record["explains"], "end_ms": (time.perf_counter() - t0) * 1000}

    def every() -> dict[str, Any]:
        vendor = vendor_for(conn)
        count = 0

        def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            nonlocal count
            result = execute(sql, params, many, context)
            if statement_kind(sql) == "select":
                cursor = conn.create_cursor()
                try:
                    vendor.explain(cursor, sql, params)
                finally:
                    cursor.close()
                count += 1
            return result

        with conn.execute_wrapper(wrapper):
            page()
        return {"explains": count}

    variants = {"baseline": baseline, "panel (3 EXPLAINs)": panel, "EXPLAIN every query": every}
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    info: dict[str, Any] = {}
    rng = random.Random(0)
    for r in range(rounds + 1):
        order = list(variants)
        rng.shuffle(order)
        for name in order:
            c0, t0 = time.process_time(), time.perf_counter()
            info[name] = variants[name]()
            if r:
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    base, base_min = statistics.median(times["baseline"]), min(times["baseline"])
    base_cpu = statistics.median(cpu["baseline"])
    for name, ts in times.items():
        m, c = statistics.median(ts), statistics.median(cpu[name])
        extra = f" ({info[name]['explains']} EXPLAINs)" if info[name] else ""
        if "end_ms" in info[name]:
            extra += f", EXPLAINs+record {info[name]['end_ms']:.2f} ms"
        print(
            f"{conn.vendor:<10} 1000q/3 shapes {name:<20} wall median {m * 1000:7.1f} ms "
            f"x{m / base:.3f} | wall min x{min(ts) / base_min:.3f} | client CPU median "
            f"{c * 1000:7.1f} ms x{c / base_cpu:.3f}{extra}"
        )


if __name__ == "__main__":
    main()
