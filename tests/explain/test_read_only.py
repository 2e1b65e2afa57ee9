"""The database, not the panel's reading of the SQL, refuses every write a panel statement
attempts: functions labelled IMMUTABLE/STABLE/DETERMINISTIC that write, ``nextval``, MyISAM
tables, AUTO_INCREMENT. Each attack counts rows and sequence values with the panel off and
on: the panel must add nothing to what the user's own statement does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections, transaction

from debug_toolbar_perf.explain.analyze import AnalyzeRefused, run_analyze
from debug_toolbar_perf.explain.capture import CaptureSession
from debug_toolbar_perf.explain.vendors.base import WRITES_REFUSED

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

PG_SETUP = [
    "CREATE TABLE djdt_attack_log (id serial PRIMARY KEY, n int)",
    "CREATE TABLE djdt_attack_t (id serial PRIMARY KEY, n int)",
    "INSERT INTO djdt_attack_t (n) SELECT g FROM generate_series(1, 50) g",
    "CREATE SEQUENCE djdt_attack_seq",
    "CREATE FUNCTION djdt_log_write(x int) RETURNS int LANGUAGE plpgsql VOLATILE AS "
    "$$ BEGIN INSERT INTO djdt_attack_log (n) VALUES (x); RETURN x; END $$",
    # Mislabelled: PostgreSQL runs them while planning (IMMUTABLE) or estimating (STABLE).
    "CREATE FUNCTION djdt_imm(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
    "$$ BEGIN PERFORM djdt_log_write(x); RETURN x; END $$",
    "CREATE FUNCTION djdt_stable(x int) RETURNS int LANGUAGE plpgsql STABLE AS "
    "$$ BEGIN PERFORM djdt_log_write(x); RETURN x; END $$",
    "CREATE FUNCTION djdt_imm_next() RETURNS bigint LANGUAGE sql IMMUTABLE AS "
    "$$ SELECT nextval('djdt_attack_seq') $$",
]
PG_TEARDOWN = [
    "DROP FUNCTION IF EXISTS djdt_imm_next(), djdt_imm(int), djdt_stable(int), djdt_log_write(int)",
    "DROP SEQUENCE IF EXISTS djdt_attack_seq",
    "DROP TABLE IF EXISTS djdt_attack_log, djdt_attack_t",
]
MY_SETUP = [
    "CREATE TABLE djdt_attack_log (id int AUTO_INCREMENT PRIMARY KEY, n int) ENGINE=InnoDB",
    "CREATE TABLE djdt_attack_mlog (id int AUTO_INCREMENT PRIMARY KEY, n int) ENGINE=MyISAM",
    "CREATE TABLE djdt_attack_t (id int AUTO_INCREMENT PRIMARY KEY, n int) ENGINE=InnoDB",
    "INSERT INTO djdt_attack_t (n) VALUES (1), (2), (3), (4), (5), (6), (7), (8)",
    "CREATE FUNCTION djdt_log_fn(x int) RETURNS int DETERMINISTIC MODIFIES SQL DATA "
    "BEGIN INSERT INTO djdt_attack_log (n) VALUES (x); RETURN x; END",
    "CREATE FUNCTION djdt_mlog_fn(x int) RETURNS int DETERMINISTIC MODIFIES SQL DATA "
    "BEGIN INSERT INTO djdt_attack_mlog (n) VALUES (x); RETURN x; END",
    "CREATE VIEW djdt_attack_v AS SELECT id, djdt_log_fn(n) AS n FROM djdt_attack_t",
    # NOT DETERMINISTIC: EXPLAIN does not run it, but counting the rows that match does.
    "CREATE FUNCTION djdt_log_nd(x int) RETURNS int NOT DETERMINISTIC MODIFIES SQL DATA "
    "BEGIN INSERT INTO djdt_attack_mlog (n) VALUES (x); RETURN x; END",
]
MY_TEARDOWN = [
    "DROP VIEW IF EXISTS djdt_attack_v",
    "DROP FUNCTION IF EXISTS djdt_log_fn",
    "DROP FUNCTION IF EXISTS djdt_mlog_fn",
    "DROP FUNCTION IF EXISTS djdt_log_nd",
    "DROP TABLE IF EXISTS djdt_attack_log, djdt_attack_mlog, djdt_attack_t",
]


def _execute(alias: str, statements: list[str]) -> None:
    with connections[alias].cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def _objects(alias: str, setup: list[str], teardown: list[str]) -> Iterator[str]:
    _execute(alias, teardown)
    _execute(alias, setup)
    yield alias
    _execute(alias, teardown)


@pytest.fixture
def pg() -> Iterator[str]:
    yield from _objects("postgres", PG_SETUP, PG_TEARDOWN)


@pytest.fixture
def my() -> Iterator[str]:
    yield from _objects("mariadb", MY_SETUP, MY_TEARDOWN)


def counters(alias: str) -> dict[str, Any]:
    """Everything a write could move: log rows, the sequence, AUTO_INCREMENT counters."""
    with connections[alias].cursor() as cur:
        if connections[alias].vendor == "postgresql":
            cur.execute("SELECT count(*) FROM djdt_attack_log")
            rows = cur.fetchone()[0]
            cur.execute("SELECT last_value, is_called FROM djdt_attack_seq")
            return {"log": rows, "seq": tuple(cur.fetchone())}
        cur.execute("SELECT count(*) FROM djdt_attack_log")
        rows = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM djdt_attack_mlog")
        mrows = cur.fetchone()[0]
        cur.execute(
            "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'djdt_attack_%%log'"
        )
        return {"log": rows, "mlog": mrows, "auto_increment": sorted(cur.fetchall())}


def user_request(
    alias: str, sql: str, *, panel: bool, atomic: bool = False
) -> CaptureSession | None:
    """The user's statement, as a view runs it, with the panel's capture and EXPLAIN or not.

    ``atomic``: inside the user's transaction (``ATOMIC_REQUESTS``), committed at the end.
    """
    session = CaptureSession([alias]) if panel else None
    conn = connections[alias]

    def view() -> None:
        if session is not None:
            session.start()
        with conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
        if session is not None:
            session.stop_capture()
            session.explain_all(50, 1_000_000)

    if atomic:
        with transaction.atomic(using=alias):
            view()
    else:
        view()
    return session


def delta(alias: str, run: Callable[[], Any]) -> tuple[dict[str, Any], dict[str, Any], Any]:
    before = counters(alias)
    result = run()
    return before, counters(alias), result


def only_shape(session: CaptureSession | None) -> Any:
    assert session is not None
    (shape,) = session.shapes.values()
    return shape


def assert_panel_adds_nothing(alias: str, sql: str, atomic: bool) -> Any:
    """Run the statement with the panel off, then on: the counters move by the same amount
    (the user's own statement's writes), and the panel shows no plan, only why."""
    b0, a0, _ = delta(alias, lambda: user_request(alias, sql, panel=False, atomic=atomic))
    b1, a1, session = delta(alias, lambda: user_request(alias, sql, panel=True, atomic=atomic))
    assert _moved(b1, a1) == _moved(b0, a0), (sql, b0, a0, b1, a1)
    shape = only_shape(session)
    assert shape.plan is None, shape.plan
    return shape


def _moved(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in before:
        if isinstance(before[key], int):
            out[key] = after[key] - before[key]
        else:
            out[key] = before[key] != after[key]
    return out


PG_ATTACKS = [
    "SELECT * FROM djdt_attack_t WHERE n = djdt_imm(3)",
    "SELECT * FROM djdt_attack_t WHERE n = djdt_stable(3)",
    "SELECT * FROM djdt_attack_t WHERE n = djdt_imm_next()",
]


@pytest.mark.postgres
@pytest.mark.parametrize("atomic", [False, True], ids=["autocommit", "atomic"])
@pytest.mark.parametrize("sql", PG_ATTACKS, ids=["immutable", "stable", "nextval"])
def test_postgres_explain_of_writing_functions_writes_nothing(
    pg: str, sql: str, atomic: bool
) -> None:
    shape = assert_panel_adds_nothing(pg, sql, atomic)
    assert shape.skipped == WRITES_REFUSED


@pytest.mark.postgres
def test_postgres_plain_explain_would_write(pg: str) -> None:
    """The attack is real: the same EXPLAIN outside a read-only transaction writes."""
    before = counters(pg)
    with connections[pg].cursor() as cur:
        cur.execute(f"EXPLAIN {PG_ATTACKS[0]}")
        cur.execute(f"EXPLAIN {PG_ATTACKS[2]}")
    after = counters(pg)
    assert after["log"] > before["log"] and after["seq"] != before["seq"]


@pytest.mark.postgres
def test_postgres_users_transaction_is_writable_after_the_panel(pg: str) -> None:
    """The read-only setting lives in the panel's savepoint only: the user's transaction keeps
    its own writes and can still write after the panel ran."""
    conn = connections[pg]
    with transaction.atomic(using=pg):
        with conn.cursor() as cur:
            cur.execute("INSERT INTO djdt_attack_log (n) VALUES (-1)")
        session = CaptureSession([pg])
        session.start()
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM djdt_attack_t WHERE n = %s", [3])
        session.stop_capture()
        session.explain_all(50, 1_000_000)
        assert only_shape(session).plan
        with conn.cursor() as cur:
            cur.execute("SHOW transaction_read_only")
            assert cur.fetchone()[0] == "off"
            cur.execute("INSERT INTO djdt_attack_log (n) VALUES (-2)")
    with conn.cursor() as cur:
        cur.execute("SELECT n FROM djdt_attack_log ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [-1, -2]


MY_ATTACKS = [
    "SELECT * FROM djdt_attack_t WHERE n = djdt_log_fn(3)",
    "SELECT * FROM (SELECT djdt_mlog_fn(3)) d",
    "SELECT * FROM djdt_attack_t WHERE n = djdt_mlog_fn(3)",
    "SELECT * FROM djdt_attack_v WHERE id = 2",
]


@pytest.mark.mariadb
@pytest.mark.parametrize("sql", MY_ATTACKS, ids=["innodb-fn", "derived-myisam", "myisam", "view"])
def test_mariadb_explain_of_writing_functions_writes_nothing(my: str, sql: str) -> None:
    shape = assert_panel_adds_nothing(my, sql, atomic=False)
    assert shape.skipped == WRITES_REFUSED


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("sql", "why"),
    [
        (MY_ATTACKS[0], "calls the stored function djdt_log_fn"),
        (MY_ATTACKS[1], "calls the stored function djdt_mlog_fn"),
        (MY_ATTACKS[3], "reads the view djdt_attack_v"),
    ],
    ids=["innodb-fn", "derived-myisam", "view"],
)
def test_mariadb_inside_users_transaction_refuses_code_it_cannot_make_read_only(
    my: str, sql: str, why: str
) -> None:
    shape = assert_panel_adds_nothing(my, sql, atomic=True)
    assert why in (shape.skipped or ""), shape.skipped
    assert "nothing was run" in (shape.skipped or "")


@pytest.mark.mariadb
def test_mariadb_plain_explain_would_write(my: str) -> None:
    before = counters(my)
    with connections[my].cursor() as cur:
        cur.execute(f"EXPLAIN {MY_ATTACKS[1]}")
        cur.fetchall()
    assert counters(my)["mlog"] == before["mlog"] + 1


@pytest.mark.mariadb
def test_mariadb_inside_users_transaction_explains_plain_queries(my: str) -> None:
    with transaction.atomic(using=my):
        session = user_request(my, "SELECT * FROM djdt_attack_t WHERE n = 3", panel=True)
        with connections[my].cursor() as cur:
            cur.execute("SELECT @@in_transaction")
            assert cur.fetchone()[0] == 1  # the user's transaction is still open
    assert only_shape(session).plan


def _stored(alias: str, sql: str) -> dict[str, Any]:
    session = user_request(alias, sql, panel=True)
    assert session is not None
    (shape,) = session.to_record(50)["shapes"]
    return shape


ANALYZE_ATTACKS = [
    *(
        pytest.param("pg", sql, marks=pytest.mark.postgres, id=f"pg-{i}")
        for i, sql in enumerate(PG_ATTACKS)
    ),
    *(
        pytest.param("my", sql, marks=pytest.mark.mariadb, id=f"mariadb-{i}")
        for i, sql in enumerate(MY_ATTACKS)
    ),
]


@pytest.mark.parametrize(("engine", "sql"), ANALYZE_ATTACKS)
def test_analyze_of_writing_select_writes_nothing(
    engine: str, sql: str, request: pytest.FixtureRequest
) -> None:
    alias = request.getfixturevalue(engine)
    shape = _stored(alias, sql)
    before = counters(alias)
    with pytest.raises(AnalyzeRefused, match="calls code that writes"):
        run_analyze(shape, allow_writes=True, timeout_ms=5000)
    assert counters(alias) == before


def test_sqlite_analyze_of_a_select_calling_a_writing_function_writes_nothing() -> None:
    """SQLite has no stored functions; a Python function that writes on the same connection
    is refused under ``PRAGMA query_only`` (restored afterwards)."""
    conn = connections["default"]
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE djdt_attack_log (n integer)")
    try:

        def log_write(x: int) -> int:
            conn.connection.execute("INSERT INTO djdt_attack_log (n) VALUES (?)", (x,))
            return x

        conn.connection.create_function("djdt_log_write", 1, log_write)
        shape = _stored("default", "SELECT djdt_log_write(3)")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM djdt_attack_log")
            assert cur.fetchone()[0] == 1  # the user's own statement wrote
        with pytest.raises(Exception, match="user-defined function raised exception"):
            run_analyze(shape, allow_writes=False, timeout_ms=5000)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM djdt_attack_log")
            assert cur.fetchone()[0] == 1
            cur.execute("PRAGMA query_only")
            assert cur.fetchone()[0] == 0
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE djdt_attack_log")


#: A LIMIT-ed scan after a filter on a table over FULL_SCAN_ROWS (2 here): the panel counts
#: the rows that match (findings.match_count_cap), which runs the filter, and its function.
LIMITED = (
    'SELECT "djdt_attack_t"."id" FROM "djdt_attack_t" WHERE "djdt_attack_t"."n" = {fn} '
    'ORDER BY "djdt_attack_t"."id" LIMIT 1'
)


def _limited(alias: str, fn: str) -> str:
    sql = LIMITED.format(fn=fn)
    return sql.replace('"', "`") if connections[alias].vendor == "mysql" else sql


@pytest.mark.mariadb
@pytest.mark.parametrize("atomic", [False, True], ids=["autocommit", "atomic"])
def test_mariadb_match_count_of_a_writing_filter_writes_nothing(
    my: str, atomic: bool, settings: Any
) -> None:
    """MariaDB refuses it at the EXPLAIN already (it evaluates the function while optimising
    the ORDER BY ... LIMIT); either way the panel adds no write. The control shows the count
    runs for a filter without the function."""
    settings.DEBUG_TOOLBAR_PERF = {"EXPLAIN": {"FULL_SCAN_ROWS": 2}}
    control = only_shape(user_request(my, _limited(my, "`djdt_attack_t`.`id` + 100"), panel=True))
    assert control.limit_matches == [0, 5]  # 1 * 8 / 2 + 1: none of the 8 rows matches
    sql = _limited(my, "djdt_log_nd(`djdt_attack_t`.`id`)")
    b0, a0, _ = delta(my, lambda: user_request(my, sql, panel=False, atomic=atomic))
    b1, a1, session = delta(my, lambda: user_request(my, sql, panel=True, atomic=atomic))
    assert _moved(b0, a0)["mlog"] > 0  # the user's own statement writes
    assert _moved(b1, a1) == _moved(b0, a0), (b0, a0, b1, a1)
    assert only_shape(session).limit_matches is None


def test_sqlite_match_count_of_a_writing_filter_writes_nothing(settings: Any) -> None:
    """SQLite's EXPLAIN does not run the function, the count would: ``query_only`` refuses
    its write, the count is left unknown (the control, with a function that does not write,
    is counted)."""
    settings.DEBUG_TOOLBAR_PERF = {"EXPLAIN": {"FULL_SCAN_ROWS": 2}}
    conn = connections["default"]
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE djdt_attack_log (n integer)")
        cur.execute("CREATE TABLE djdt_attack_t (id integer PRIMARY KEY, n integer)")
        cur.execute("INSERT INTO djdt_attack_t (n) VALUES (1), (2), (3), (4), (5), (6), (7), (8)")
    try:

        def log_write(x: int) -> int:
            conn.connection.execute("INSERT INTO djdt_attack_log (n) VALUES (?)", (x,))
            return x

        conn.connection.create_function("djdt_log_write", 1, log_write)
        conn.connection.create_function("djdt_pure", 1, lambda x: x + 100)

        def logged() -> int:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM djdt_attack_log")
                return int(cur.fetchone()[0])

        control = user_request("default", _limited("default", 'djdt_pure("id")'), panel=True)
        assert only_shape(control).limit_matches == [0, 5]
        sql = _limited("default", 'djdt_log_write("djdt_attack_t"."id")')
        before = logged()
        user_request("default", sql, panel=False)
        own = logged() - before
        session = user_request("default", sql, panel=True)
        assert own > 0 and logged() - before == 2 * own  # the user's statement, twice: no more
        shape = only_shape(session)
        assert shape.plan and shape.limit_matches is None
        with conn.cursor() as cur:
            cur.execute("PRAGMA query_only")
            assert cur.fetchone()[0] == 0
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE djdt_attack_log")
            cur.execute("DROP TABLE djdt_attack_t")


# -- the same attacks through whole toolbar requests -------------------------------------

REQUEST_ATTACKS = [
    *(
        pytest.param("pg", i, marks=pytest.mark.postgres, id=f"pg-{name}")
        for i, name in enumerate(["immutable", "stable", "nextval"])
    ),
    *(
        pytest.param("my", i, marks=pytest.mark.mariadb, id=f"mariadb-{name}")
        for i, name in enumerate(["innodb-fn", "derived-myisam", "myisam", "view"])
    ),
]


def _toolbar_request(path: str, *, asgi: bool, panel: bool) -> Any:
    """One page through the real toolbar (WSGI test client or ASGI AsyncClient), with the
    ExplainPanel on or off (the toolbar's own per-panel cookie, as its checkbox sets it)."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient, Client

    from tests.conftest import arun_with_toolbar, run_with_toolbar

    client: Any = AsyncClient() if asgi else Client(enforce_csrf_checks=True)
    client.cookies["djdtExplainPanel"] = "on" if panel else "off"
    run = async_to_sync(arun_with_toolbar)(client, path) if asgi else run_with_toolbar(client, path)
    assert run.response.status_code == 200, run.response.content[:500]
    assert run.live_panel("ExplainPanel").enabled is panel
    return client, run


@pytest.mark.parametrize(("engine", "n"), REQUEST_ATTACKS)
@pytest.mark.parametrize("atomic", [False, True], ids=["autocommit", "atomic-requests"])
@pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
def test_a_toolbar_request_writes_no_more_than_its_view(
    engine: str,
    n: int,
    atomic: bool,
    asgi: bool,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every panel path of one real request: the capture and EXPLAIN at the view's end, the
    match counts, the record stored and rendered, and the ANALYZE button where one is shown.
    The counters move by what the view's own statement wrote, panel on or off."""
    from django.test import override_settings

    from tests.explain import explain_urls

    alias = request.getfixturevalue(engine)
    attacks = PG_ATTACKS if engine == "pg" else MY_ATTACKS
    monkeypatch.setitem(explain_urls.ATTACKS, alias, attacks)
    monkeypatch.setitem(connections[alias].settings_dict, "ATOMIC_REQUESTS", atomic)
    if asgi:
        monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)
    path = f"/explain/attack/{alias}/{n}/"
    with override_settings(ROOT_URLCONF="tests.explain.explain_urls"):
        b0, a0, _ = delta(alias, lambda: _toolbar_request(path, asgi=asgi, panel=False))
        b1, a1, (client, run) = delta(alias, lambda: _toolbar_request(path, asgi=asgi, panel=True))
        assert _moved(b1, a1) == _moved(b0, a0), (attacks[n], b0, a0, b1, a1)
        (shape,) = [s for s in run.record("ExplainPanel")["shapes"] if "djdt_" in s["sql"]]
        assert shape["plan"] is None and shape["skipped"], shape
        html = run.content("ExplainPanel")
        assert f"Not explained: {shape['skipped']}" in html.replace("&#x27;", "'")
        assert counters(alias) == a1  # rendering the stored panel ran nothing
        if shape["skipped"] == WRITES_REFUSED:  # no button for what the database refused
            assert 'data-signed="' not in html
        elif not asgi:  # MariaDB in the user's transaction: nothing run; the button is offered
            from tests.explain.test_panel import _analyze_url_and_signed, _csrf_post

            url, signed = _analyze_url_and_signed(html)
            response = _csrf_post(client, url, signed)
            assert response.status_code == 403, response.content[:300]
            assert WRITES_REFUSED in response.json()["content"]
            assert counters(alias) == a1, "the ANALYZE button wrote"
