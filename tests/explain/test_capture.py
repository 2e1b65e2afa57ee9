"""Capture: every statement by shape, one EXPLAIN per shape, invisible to the request's queries."""

from __future__ import annotations

import asyncio
import contextvars
import linecache
import os
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from debug_toolbar_perf.explain import capture, sites
from debug_toolbar_perf.explain.capture import CaptureSession, current_session
from debug_toolbar_perf.explain.shapes import fingerprint, statement_kind
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
    # Data-modifying CTEs write whatever the main statement is.
    assert statement_kind("WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x") == (
        "update"
    )
    assert statement_kind("with x as (\n  delete from t returning id) select 1") == "delete"
    assert statement_kind("WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1") == ("insert")
    # A verb inside a string, or a locking clause, is not DML.
    assert statement_kind("WITH x AS (SELECT '(delete from t)' AS s) SELECT * FROM x") == ("select")
    assert statement_kind("WITH x AS (SELECT 1 FROM t FOR UPDATE) SELECT * FROM x") == "select"
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
def test_stopped_session_is_unbound_and_writes_are_not_explained() -> None:
    session = _session()
    assert current_session() is session
    Category.objects.create(name="x")
    Category.objects.filter(name="x").update(name="y")
    session.stop_capture()
    assert current_session() is None
    before = session.statements
    Category.objects.count()
    assert session.statements == before  # nothing recorded after stop
    # The dispatcher stays first on the connection, inert without a session.
    assert connection.execute_wrappers[0] is capture._dispatch
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


# -- the issuing line: hints give exactly what a full walk gives ----------------------------


def _issue_from_helper(pk: int) -> None:
    Category.objects.filter(pk=pk).first()  # helper line


def _issue_from_generator(pk: int) -> Iterator[Any]:
    for _ in range(3):
        yield Category.objects.filter(pk=pk).first()  # generator line


def _mixed_workload() -> None:
    pk = Category.objects.create(name="hinted").pk
    for i in range(12):
        Category.objects.filter(pk=pk).first()  # loop line A
        _issue_from_helper(pk)
        if i % 3 == 0:
            Category.objects.filter(pk=pk).first()  # loop line B, same shape as A
        list(Category.objects.filter(name="hinted"))
    list(_issue_from_generator(pk))
    for _ in _issue_from_generator(pk):
        list(Category.objects.filter(name="hinted"))


def _lines(monkeypatch: pytest.MonkeyPatch, hints: bool) -> tuple[dict[str, Any], int, int]:
    """Lines per shape of the workload, statements recorded and stack walks done."""
    walks = []
    real_walk = capture.walk

    def counting_walk(*args: Any) -> Any:
        walks.append(1)
        return real_walk(*args)

    with monkeypatch.context() as m:
        m.setattr(capture, "walk", counting_walk)
        if not hints:
            m.setattr(capture, "make_hint", lambda *args: None)
        session = _session()
        try:
            _mixed_workload()
        finally:
            session.stop_capture()
    assert not session.stats.notes and not session.unrecorded
    lines = {s.fingerprint: dict(s.lines) for s in session.shapes.values() if s.kind == "select"}
    assert sum(sum(c.values()) for c in lines.values()) == session.statements - 1  # - INSERT
    return lines, session.statements, len(walks)


@pytest.mark.parametrize("project", [True, False], ids=["tests-are-project", "tests-outside"])
@pytest.mark.django_db
def test_hints_count_exactly_what_a_full_walk_counts(
    project: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same workload with hints and with a full walk per statement: identical counts
    per line, and the lines are this file's (helper, generator and loop lines apart)."""
    paths = [os.path.dirname(os.path.dirname(__file__))] if project else []
    with override_settings(DEBUG_TOOLBAR_PERF={"PROJECT_PATHS": paths}):
        hinted, statements, hinted_walks = _lines(monkeypatch, hints=True)
        walked, _, walks = _lines(monkeypatch, hints=False)
    assert hinted == walked
    assert walks == statements  # one walk per statement without hints
    # Recognised: every repeat from a project line (one walk per place and shape); from
    # code outside the project, repeats from the same live frame only (the loop lines).
    # (8 and 29 walks of 50 on CPython 3.11; a little fewer where generators keep lasti.)
    assert hinted_walks <= (8 if project else 29), (hinted_walks, walks)
    here = os.path.abspath(__file__)
    by_source: Counter[str] = Counter()
    for lines in hinted.values():
        for (filename, line, _function), count in lines.items():
            assert filename == here
            by_source[linecache.getline(filename, line).split("#")[-1].strip()] += count
    assert by_source["loop line A"] == 12, by_source
    assert by_source["loop line B, same shape as A"] == 4, by_source
    assert by_source["helper line"] == 12 and by_source["generator line"] == 6


def test_machinery_is_never_the_issuer() -> None:
    import concurrent.futures.thread

    import asgiref.sync
    import debug_toolbar.panels.sql.tracking
    import django.db.models.query

    for module in (asgiref.sync, concurrent.futures.thread, debug_toolbar.panels.sql.tracking):
        code = next(v.__code__ for v in vars(module).values() if hasattr(v, "__code__"))
        assert sites.classify(code) == sites.SKIP, module
    assert sites.classify(django.db.models.query.QuerySet.first.__code__) == sites.SKIP
    assert sites.classify(_mixed_workload.__code__) == sites.OUTSIDE  # tests/ is not BASE_DIR


# -- statements run in another thread ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_thread_with_copied_context_is_captured_and_explained_at_once() -> None:
    """A thread started with the request's context runs on its own connection, gone by the
    end of the view: its SELECT is explained right after its first run, on that connection."""
    Category.objects.create(name="in-thread")
    session = _session()
    results: list[Any] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(Category.objects.filter(name="in-thread").count())
        finally:
            connections.close_all()

    thread = threading.Thread(target=contextvars.copy_context().run, args=(work,))
    thread.start()
    thread.join(10)
    list(Category.objects.filter(pk__gt=0))  # one on the request's own connection
    session.stop_capture()
    assert results == [1, 1, 1]
    assert session.stats.early == 1
    session.explain_all()
    shapes = {s.fingerprint: s for s in session.shapes.values()}
    in_thread = next(s for f, s in shapes.items() if "COUNT" in f)
    own = next(s for f, s in shapes.items() if "COUNT" not in f)
    assert in_thread.count == 3 and in_thread.plan and own.plan
    assert session.stats.explains == 2 and session.stats.early == 1


@pytest.mark.django_db(transaction=True)
def test_async_caller_found_while_its_task_still_runs() -> None:
    """An executor thread can run a sync call before the event loop has suspended the task
    that asked for it: the caller is then on the event-loop thread's stack, not in the
    task's chain of awaits. Here the task keeps running (never awaits) while a thread with
    its context runs a query from Django code only."""
    Category.objects.create(name="racing")
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    async def view() -> CaptureSession:
        session = CaptureSession(["default"])
        session.start(home={}, task=capture.current_task())
        query = Category.objects.filter(name="racing")
        t = threading.Thread(target=contextvars.copy_context().run, args=(list, query))
        # Started, joined and polled on one line: whenever the thread's query runs (under
        # load it can run while the thread is still being started), the task is on it.
        while (t.ident is None and t.start() is None) or t.join(0.001) or t.is_alive():
            pass
        session.stop_capture()
        return session

    with override_settings(DEBUG_TOOLBAR_PERF={"PROJECT_PATHS": [tests_dir]}):
        # The task's own coroutine is the standard library's, awaiting the view: while the
        # task runs, its chain of awaits stops there.
        session = asyncio.run(asyncio.wait_for(view(), timeout=None))
    assert not session.stats.notes, session.stats.notes
    (shape,) = session.shapes.values()
    ((filename, line, function),) = shape.lines
    assert function == "view" and "t.is_alive()" in linecache.getline(filename, line)
    assert shape.plan and session.stats.early == 1


@pytest.mark.postgres
@pytest.mark.django_db(databases="__all__", transaction=True)
def test_postgres_statement_explained_under_its_own_search_path() -> None:
    """A view switches ``search_path`` (a tenant), queries, switches back: the EXPLAIN at the
    end of the view runs under the path the statement ran under, and leaves the current one."""
    conn = connections["postgres"]
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS djdt_tenant CASCADE")
        cur.execute("CREATE SCHEMA djdt_tenant")
        cur.execute("CREATE TABLE djdt_tenant.djdt_sp_t (id serial PRIMARY KEY, n int)")
        cur.execute("SHOW search_path")
        original = cur.fetchone()[0]
    try:
        session = CaptureSession(["postgres"])
        session.start()
        with conn.cursor() as cur:
            cur.execute("SET search_path TO djdt_tenant")
            cur.execute("SELECT * FROM djdt_sp_t WHERE n = %s", [1])
            cur.execute(f"SET search_path TO {original}")
        session.stop_capture()
        session.explain_all(50, 1000)
        (shape,) = session.shapes.values()
        assert shape.plan_error is None and shape.plan, shape.plan_error
        assert shape.plan["relation"] == "djdt_sp_t", shape.plan
        with conn.cursor() as cur:
            cur.execute("SHOW search_path")
            assert cur.fetchone()[0] == original
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP SCHEMA djdt_tenant CASCADE")


@pytest.mark.mariadb
@pytest.mark.django_db(databases="__all__", transaction=True)
def test_mariadb_statement_explained_under_the_database_it_used() -> None:
    """A view ``USE``s another database, queries, switches back: the EXPLAIN at the end of
    the view (its sizes and the duplicate-index check too) runs in the database the
    statement ran in, and leaves the connection in its own."""
    conn = connections["mariadb"]
    with conn.cursor() as cur:
        cur.execute("SELECT DATABASE()")
        original = cur.fetchone()[0]
        cur.execute("DROP DATABASE IF EXISTS djdt_perf_other")
        cur.execute("CREATE DATABASE djdt_perf_other")
        cur.execute(
            "CREATE TABLE djdt_perf_other.djdt_use_t (id int PRIMARY KEY, n int, KEY by_n (n))"
        )
        cur.execute(
            "INSERT INTO djdt_perf_other.djdt_use_t SELECT seq, seq % 100 FROM seq_1_to_20000"
        )
    try:
        session = CaptureSession(["mariadb"])
        session.start()
        with conn.cursor() as cur:
            cur.execute("USE djdt_perf_other")
            cur.execute("SELECT * FROM djdt_use_t WHERE n = %s", [1])
            cur.execute(f"USE `{original}`")
        session.stop_capture()
        session.explain_all(50, 1000)
        (shape,) = session.shapes.values()
        assert shape.schema == "djdt_perf_other"
        assert shape.plan_error is None and shape.plan, shape.plan_error
        (table,) = [n for n in _plan_nodes(shape.plan) if n.get("relation")]
        assert table["relation"] == "djdt_use_t" and table["index"] == "by_n", shape.plan
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            assert cur.fetchone()[0] == original  # the panel put the connection back
    finally:
        with conn.cursor() as cur:
            cur.execute(f"USE `{original}`")
            cur.execute("DROP DATABASE djdt_perf_other")


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("children") or ():
        yield from _plan_nodes(child)
