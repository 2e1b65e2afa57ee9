"""ExplainPanel against explaining every query, on SQLite, PostgreSQL and MariaDB.

1. A page of 10, 100 and 1,000 queries of 3 shapes (a category and a product by primary key,
   three products of a category through the foreign-key index), requested through the toolbar:
   toolbar alone (its SQL panel records every query), with the ExplainPanel (one EXPLAIN per
   distinct shape), and with an EXPLAIN after every SELECT (what a tool that explains each
   query does; Django's own ``explain_query_prefix``, on the request's connection).
2. The same 1,000-query page under ASGI (Django's AsyncClient: the sync view runs in
   asgiref's executor thread, the panel hops there for its EXPLAINs), SQLite.
3. The time the panel adds per distinct shape of an indexed lookup (``explain_all`` for one
   captured primary-key lookup: EXPLAIN on a cursor + parsing), next to the lookup itself.
4. The cost of verifying one index suggestion with the planner (``explain/verify.py``) on a
   100k-row table, per shape (a partial index for a boolean filter, a composite index for an
   equality + sort): PostgreSQL with HypoPG and with a rolled-back real index, SQLite.

This module is also the URLconf of the benchmark page (``ROOT_URLCONF`` is switched to it for
the comparison), so the demo's own URLs stay as they are.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from debug_toolbar.toolbar import debug_toolbar_urls
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import path

from ..harness import Result, Variant, combined, measure
from .common import PERF, baseline, getter, panels

EXPLAIN = PERF + "ExplainPanel"
GOAL_PAGE = "≤ 10%"
SHAPE_GOAL_MS = {"sqlite": 1.0, "postgresql": 2.0, "mysql": 2.0}
CATEGORIES, PRODUCTS = 20, 3000
_pks: dict[str, tuple[list[int], list[int]]] = {}


def queries(request: HttpRequest) -> HttpResponse:
    """``n`` queries of 3 shapes on database ``db``: the workload of the page comparison."""
    from shop.models import Category, Product

    alias = request.GET.get("db", "default")
    n = int(request.GET.get("n", "1000"))
    cat_pks, pks = _pks[alias]
    for i in range(n):
        shape = i % 3
        if shape == 0:
            Category.objects.using(alias).filter(pk=cat_pks[i % len(cat_pks)]).first()
        elif shape == 1:
            Product.objects.using(alias).filter(pk=pks[i % len(pks)]).first()
        else:
            list(Product.objects.using(alias).filter(category_id=cat_pks[i % len(cat_pks)])[:3])
    return HttpResponse(f"<html><body><p>{n} queries on {alias}</p></body></html>")


urlpatterns = [path("bench/queries/", queries), *debug_toolbar_urls()]


def _prepare(alias: str) -> None:
    """Make sure ``alias`` holds categories and products (PostgreSQL is not seeded by run.py)."""
    from shop.models import Category, Product

    if Product.objects.using(alias).count() < PRODUCTS:
        cats = Category.objects.using(alias).bulk_create(
            [Category(name=f"Bench category {i}") for i in range(CATEGORIES)]
        )
        Product.objects.using(alias).bulk_create(
            [
                Product(name=f"Bench product {i}", category=cats[i % CATEGORIES], price=1)
                for i in range(PRODUCTS)
            ],
            batch_size=1000,
        )
    cat_pks = list(Category.objects.using(alias).order_by("pk").values_list("pk", flat=True))
    pks = list(Product.objects.using(alias).order_by("pk").values_list("pk", flat=True)[:500])
    _pks[alias] = (cat_pks[:CATEGORIES], pks)


def _explain_every(alias: str) -> Callable[[], AbstractContextManager[Any]]:
    @contextmanager
    def cm() -> Iterator[None]:
        conn = connections[alias]
        prefix = conn.ops.explain_query_prefix()

        def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            result = execute(sql, params, many, context)
            if not many and sql.lstrip()[:6].upper() == "SELECT":
                cursor = conn.create_cursor()
                try:
                    cursor.execute(f"{prefix} {sql}", params)
                    cursor.fetchall()
                finally:
                    cursor.close()
            return result

        with conn.execute_wrapper(wrapper):
            yield

    return cm


def _page(alias: str, quick: bool) -> list[Result]:
    vendor = connections[alias].vendor
    sizes = {10: 3, 100: 2} if quick else {10: 15, 100: 11, 1000: 7}
    results: list[Result] = []
    for n, rounds in sizes.items():
        rows = measure(
            "ExplainPanel vs EXPLAIN of every query (page of n queries, 3 shapes)",
            f"{vendor}: {n:,} queries",
            getter(f"/bench/queries/?db={alias}&n={n}"),
            [
                baseline(),
                Variant("ExplainPanel (one EXPLAIN per shape)", panels(EXPLAIN)),
                Variant(
                    "EXPLAIN after every SELECT",
                    lambda alias=alias: combined(panels(), _explain_every(alias)),
                ),
            ],
            rounds=rounds,
        )
        base = next(r for r in rows if r.baseline)
        for r in rows:
            if r.variant.startswith("ExplainPanel"):
                r.extra["ours"] = True
                r.goal = GOAL_PAGE
                r.extra["met"] = r.ratio <= 1.10
            if not r.baseline:
                r.extra["note"] = (
                    f"{vendor}, {n:,} queries: {r.variant} adds "
                    f"{(r.median - base.median) * 1000:.1f} ms to a "
                    f"{base.median * 1000:.1f} ms request (the toolbar's SQL panel records "
                    f"every query in all variants)."
                )
        results += rows
    return results


def _asgi_getter(path: str) -> Callable[[], None]:
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    client = AsyncClient()
    get = async_to_sync(client.get)

    def run() -> None:
        response = get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")

    return run


def _page_asgi(quick: bool) -> list[Result]:
    n = 100 if quick else 1000
    rows = measure(
        "ExplainPanel under ASGI (AsyncClient, sync view in the executor thread)",
        f"sqlite: {n:,} queries, ASGI",
        _asgi_getter(f"/bench/queries/?db=default&n={n}"),
        [baseline(), Variant("ExplainPanel (one EXPLAIN per shape)", panels(EXPLAIN))],
        rounds=3 if quick else 7,
    )
    base = next(r for r in rows if r.baseline)
    for r in rows:
        if not r.baseline:
            r.extra.update(ours=True, met=r.ratio <= 1.10)
            r.goal = GOAL_PAGE
            r.extra["note"] = (
                f"sqlite under ASGI, {n:,} queries: the ExplainPanel adds "
                f"{(r.median - base.median) * 1000:.1f} ms to a {base.median * 1000:.1f} ms "
                "request (capture in the executor thread, one hop back there for 3 EXPLAINs)."
            )
    return rows


def _per_shape(alias: str, quick: bool) -> list[Result]:
    from debug_toolbar_perf.conf import get_config
    from debug_toolbar_perf.explain.capture import CaptureSession
    from shop.models import Product

    vendor = connections[alias].vendor
    cfg = get_config()["EXPLAIN"]
    _, pks = _pks[alias]
    lookup: list[float] = []
    added: list[float] = []
    for i in range(30 if quick else 300):
        session = CaptureSession(
            [alias], max_shapes=int(cfg["MAX_SHAPES"]), size_cap=int(cfg["SIZE_COUNT_CAP"])
        )
        session.start()
        t0 = time.perf_counter()
        Product.objects.using(alias).filter(pk=pks[i % len(pks)]).first()
        t1 = time.perf_counter()
        session.stop_capture()
        t2 = time.perf_counter()
        session.explain_all()
        t3 = time.perf_counter()
        if session.stats.explains != 1:
            raise RuntimeError(f"expected 1 EXPLAIN, got {session.stats.explains}")
        if i >= 3:  # warm-up
            lookup.append(t1 - t0)
            added.append(t3 - t2)
    goal_ms = SHAPE_GOAL_MS.get(vendor, 2.0)
    comparison = "ExplainPanel: time added per distinct query shape (indexed lookup)"
    base = Result(comparison, vendor, "the primary-key lookup itself", lookup, baseline=True)
    ours = Result(
        comparison, vendor, "EXPLAIN of its shape + parsing", added, goal=f"≤ {goal_ms:g} ms"
    )
    base.ratio = 1.0
    ours.ratio = statistics.median(added) / statistics.median(lookup)
    p90 = sorted(added)[int(0.9 * len(added))]
    ours.extra.update(
        ours=True,
        met=ours.median * 1000 <= goal_ms,
        note=(
            f"{vendor}: {ours.median * 1000:.3f} ms per shape (median of {len(added)}, "
            f"p90 {p90 * 1000:.3f} ms); the lookup itself {base.median * 1000:.3f} ms."
        ),
    )
    return [base, ours]


VERIFY_ROWS = 100_000
VERIFY_GOAL_MS = {"hypopg": 5.0, "sqlite": 20.0}
VERIFY_SHAPES = {
    "partial index (boolean filter)": 'SELECT "bench_verify"."id" FROM "bench_verify" '
    'WHERE "bench_verify"."flag"',
    "composite (equality + sort)": 'SELECT "bench_verify"."id" FROM "bench_verify" '
    'WHERE "bench_verify"."n" = %s ORDER BY "bench_verify"."m" DESC',
}


def _verify_table(alias: str) -> None:
    conn = connections[alias]
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_verify")
        cur.execute(
            "CREATE TABLE bench_verify (id integer PRIMARY KEY, flag boolean, n int, m int)"
        )
        if conn.vendor == "postgresql":
            cur.execute(
                "INSERT INTO bench_verify SELECT g, g % 50 = 0, g % 1000, g % 997 "
                f"FROM generate_series(1, {VERIFY_ROWS}) g"
            )
            cur.execute("ANALYZE bench_verify")
        else:
            cur.execute(
                f"WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < "
                f"{VERIFY_ROWS}) INSERT INTO bench_verify SELECT i, i % 50 = 0, i % 1000, "
                "i % 997 FROM g"
            )


def _verification(alias: str, quick: bool) -> list[Result]:
    """Milliseconds per verified suggestion, per shape (``index_checks[...]["ms"]``)."""
    from debug_toolbar_perf.explain.capture import CaptureSession

    conn = connections[alias]
    variants = ["sqlite"]
    if conn.vendor == "postgresql":
        variants = ["hypopg", "real index"]
    _verify_table(alias)
    results: list[Result] = []
    try:
        for variant in variants:
            if conn.vendor == "postgresql":
                with conn.cursor() as cur:
                    cur.execute(
                        "CREATE EXTENSION IF NOT EXISTS hypopg"
                        if variant == "hypopg"
                        else "DROP EXTENSION IF EXISTS hypopg"
                    )
            for label, sql in VERIFY_SHAPES.items():
                times: list[float] = []
                methods: set[str] = set()
                for _ in range(5 if quick else 30):
                    session = CaptureSession([alias])
                    session.start()
                    with conn.cursor() as cur:
                        cur.execute(sql, [7] if "%s" in sql else None)
                        cur.fetchall()
                    session.stop_capture()
                    session.explain_all()
                    for shape in session.shapes.values():
                        for check in shape.index_checks.values():
                            times.append(check["ms"] / 1000)
                            methods.add(f"{check['method']}, used={check.get('used')}")
                if not times:
                    continue
                goal = VERIFY_GOAL_MS.get(variant)
                result = Result(
                    "ExplainPanel: verifying one index suggestion with the planner (100k rows)",
                    f"{conn.vendor} {variant}",
                    label,
                    times,
                    goal=f"≤ {goal:g} ms" if goal else "",
                )
                result.ratio = float("nan")
                result.extra["no_ratio"] = "an absolute cost: the goal is in ms"
                result.extra.update(
                    ours=True,
                    met=goal is None or result.median * 1000 <= goal,
                    note=f"{label}: {result.median * 1000:.2f} ms per suggestion "
                    f"(median of {len(times)}; {'; '.join(sorted(methods))}).",
                )
                results.append(result)
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_verify")
    return results


def run(quick: bool) -> list[Result]:
    aliases = [a for a in ("default", "postgres", "mariadb") if a in connections.settings]
    results: list[Result] = []
    with override_settings(ROOT_URLCONF=__name__):
        for alias in aliases:
            _prepare(alias)
            results += _page(alias, quick)
        results += _page_asgi(quick)
        for alias in aliases:
            results += _per_shape(alias, quick)
        for alias in aliases:
            if connections[alias].vendor in ("sqlite", "postgresql"):
                results += _verification(alias, quick)
    missing = [a for a in ("postgres", "mariadb") if a not in aliases]
    if missing:
        results[-1].extra["note"] = f"Not reachable, not measured: {', '.join(missing)}."
    return results
