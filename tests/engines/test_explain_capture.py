"""Capture: every statement by shape, one EXPLAIN per shape, invisible to the request's queries."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from debug_toolbar_perf.engines.explain.capture import CaptureSession, fingerprint, statement_kind
from shop.models import Category, Product


def test_fingerprint_abstracts_literals_params_and_in_lists() -> None:
    a = fingerprint('SELECT * FROM "t" WHERE "t"."id" IN (%s, %s, %s) AND "t"."n" = \'x\'')
    b = fingerprint('SELECT * FROM "t" WHERE "t"."id" IN (%s) AND "t"."n" = \'yy\'')
    c = fingerprint('SELECT * FROM "t" WHERE "t"."id" IN (%s, %s) AND "t"."n" = \'it\'\'s\'')
    assert a[0] == b[0] == c[0]
    assert "IN (...)" in a[1] and "'" not in a[1]
    assert b[1].endswith('"t"."n" = ?')
    rows = fingerprint('INSERT INTO "t" ("a", "b") VALUES (%s, %s), (%s, %s)')
    assert rows == fingerprint('INSERT INTO "t" ("a", "b") VALUES (%s, %s)')
    assert fingerprint("SELECT 1 LIMIT 21")[0] == fingerprint("SELECT 1 LIMIT 5")[0]
    assert (
        fingerprint('SELECT "t2"."c" FROM "t2"')[0] != fingerprint('SELECT "t3"."c" FROM "t3"')[0]
    )


def test_statement_kind() -> None:
    assert statement_kind("  SELECT 1") == "select"
    assert statement_kind("WITH x AS (SELECT 1) SELECT * FROM x") == "select"
    assert statement_kind("WITH x AS (SELECT 1) UPDATE t SET a = 1") == "update"
    assert statement_kind('INSERT INTO "t" VALUES (1)') == "insert"
    assert statement_kind('SAVEPOINT "s1"') == "other"


def _session(aliases: list[str] | None = None) -> CaptureSession:
    session = CaptureSession(aliases or ["default"])
    session.start()
    return session


@pytest.mark.django_db
def test_thousand_queries_of_three_shapes_cost_three_explains() -> None:
    cats = Category.objects.bulk_create([Category(name=f"c{i}") for i in range(5)])
    Product.objects.bulk_create(
        [Product(name=f"p{i}", category=cats[i % 5], price=1) for i in range(20)]
    )
    session = _session()
    try:
        for i in range(334):
            Category.objects.filter(pk=cats[i % 5].pk).first()
            list(Product.objects.filter(name=f"p{i % 20}"))
            list(Product.objects.filter(pk__in=list(range(1, 2 + i % 7))))
    finally:
        session.stop_capture()
    assert sum(s.count for s in session.shapes.values()) == 1002
    assert len(session.shapes) == 3
    # Count at the DB-API level, independently of the panel's own counter (SQLite's trace
    # callback does not report EXPLAIN statements).
    executed: list[str] = []
    real_create = connection.create_cursor

    def counting_cursor(*args: Any, **kwargs: Any) -> Any:
        cursor = real_create(*args, **kwargs)
        real_execute = cursor.execute

        def execute(sql: str, params: Any = None) -> Any:
            executed.append(sql)
            return real_execute(sql, params)

        cursor.execute = execute
        return cursor

    connection.create_cursor = counting_cursor
    try:
        with CaptureQueriesContext(connection) as seen:
            session.explain_all(max_shapes=50, size_cap=1000)
    finally:
        del connection.create_cursor
    assert len([q for q in executed if q.startswith("EXPLAIN")]) == 3
    assert session.stats.explains == 3
    assert len(seen.captured_queries) == 0  # the panel's statements are invisible here
    record = session.to_record(50)
    assert [s["count"] for s in record["shapes"]] and all(s["plan"] for s in record["shapes"])


@pytest.mark.django_db
def test_max_shapes_caps_the_explains() -> None:
    session = _session()
    for n in range(1, 6):
        list(
            Category.objects.raw(
                "SELECT * FROM shop_category WHERE " + " AND ".join(["id > %s"] * n), [0] * n
            )
        )
    session.stop_capture()
    session.explain_all(max_shapes=2, size_cap=1000)
    assert session.stats.explains == 2
    skipped = [s.skipped for s in session.shapes.values() if s.skipped]
    assert len(skipped) == 3 and "limit of 2" in skipped[0]


@pytest.mark.django_db
def test_wrapper_is_removed_and_writes_are_not_explained() -> None:
    session = _session()
    Category.objects.create(name="x")
    Category.objects.filter(name="x").update(name="y")
    session.stop_capture()
    before = session.statements
    Category.objects.count()
    assert session.statements == before  # nothing recorded after stop
    assert not connection.execute_wrappers
    session.explain_all(50, 1000)
    kinds = {s.kind: s for s in session.shapes.values()}
    assert set(kinds) == {"insert", "update"}
    assert session.stats.explains == 0
    assert "not a SELECT" in (kinds["update"].skipped or "")


@pytest.mark.django_db(transaction=True)
def test_other_threads_queries_are_not_captured() -> None:
    """execute_wrapper is per connection, connections are per thread: no mixing."""
    Category.objects.create(name="a")
    done = threading.Event()

    def other() -> None:
        try:
            for _ in range(20):
                list(Category.objects.filter(name="from-thread"))
        finally:
            connections.close_all()
            done.set()

    session = _session()
    thread = threading.Thread(target=other)
    thread.start()
    list(Category.objects.filter(name="from-request"))
    thread.join(10)
    session.stop_capture()
    assert done.is_set()
    assert session.statements == 1


@pytest.mark.django_db
def test_issuing_line_and_live_params() -> None:
    import decimal

    session = _session()
    list(Product.objects.filter(price=decimal.Decimal("1.50")))  # the issuing line
    session.stop_capture()
    session.explain_all(50, 1000)
    (shape,) = session.shapes.values()
    record: dict[str, Any] = session.to_record(50)["shapes"][0]
    assert record["params"][0][0] in ("decimal", "str")  # SQLite adapts Decimal to str
    assert shape.params is None  # live objects dropped after the record
    assert record["lines"][0]["count"] == 1
    assert record["stack"] and record["plan"]["type"] == "QUERY PLAN"
