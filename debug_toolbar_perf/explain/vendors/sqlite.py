"""SQLite: ``EXPLAIN QUERY PLAN`` (no row counts), sizes from sqlite_stat1 or a capped count.

SQLite has no EXPLAIN ANALYZE. The on-demand analysis runs the statement itself
(inside a transaction rolled back by the caller), fetches its rows, and reports
the rows and the time next to the query plan; a progress handler enforces the
timeout.

Every panel statement runs with ``PRAGMA query_only = ON`` (restored afterwards):
SQLite then refuses any write on the connection, whatever calls it.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..plans import PlanNode, parse_sqlite
from ..verify import compare, parse_ddl
from .base import Run, Vendor, capped_count, quote

SAVEPOINT = "djdt_perf_verify"
EMPTY_COPY = (
    "real index on an empty copy of the table (no statistics: the plan is the same), rolled back"
)
_NAME = r'(?:"(?:[^"]|"")+"|\[[^\]]+\]|`[^`]+`|[^\s(]+)'
_CREATE_TABLE = re.compile(rf"^CREATE\s+TABLE\s+{_NAME}", re.IGNORECASE)
_CREATE_INDEX = re.compile(rf"^CREATE\s+(UNIQUE\s+)?INDEX\s+{_NAME}", re.IGNORECASE)


class SQLite(Vendor):
    name = "sqlite"
    supports_analyze = True
    supports_partial_index = True

    def refused_write(self, exc: BaseException) -> bool:
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        if code is not None:
            return bool(code & 0xFF == sqlite3.SQLITE_READONLY)
        return isinstance(exc, sqlite3.OperationalError) and "readonly database" in str(exc)

    @contextmanager
    def session(self, connection: Any, timeout_ms: int | None = None) -> Iterator[Run]:
        cursor = connection.create_cursor()
        try:
            cursor.execute("PRAGMA query_only")
            before = int(cursor.fetchone()[0])
            cursor.execute("PRAGMA query_only = ON")
            try:
                yield lambda fn: fn(cursor)
            finally:
                cursor.execute(f"PRAGMA query_only = {before}")
        finally:
            cursor.close()

    def indexes(
        self, connection: Any, table: str, schema: str | None = None
    ) -> list[tuple[str, list[str]]]:
        cursor = connection.create_cursor()
        try:
            out: list[tuple[str, list[str]]] = []
            cursor.execute(f"PRAGMA table_info({quote(cursor, table)})")
            pk = [r for r in cursor.fetchall() if r[5]]
            if len(pk) == 1 and str(pk[0][2]).upper() == "INTEGER":  # the rowid itself
                out.append(("primary key", [str(pk[0][1])]))
            cursor.execute(f"PRAGMA index_list({quote(cursor, table)})")
            for row in cursor.fetchall():
                if row[4]:  # partial
                    continue
                cursor.execute(f"PRAGMA index_xinfo({quote(cursor, row[1])})")
                cols = [
                    f"{c[2]} DESC" if c[3] else str(c[2])
                    for c in cursor.fetchall()
                    if c[5] and c[2]
                ]
                out.append((str(row[1]), cols))
            return out
        finally:
            cursor.close()

    def verify_index(
        self,
        connection: Any,
        ddl: str,
        name: str,
        explain: Callable[[Any], PlanNode],
        before: PlanNode,
        rows: int | None,
        timeout_ms: int,
        using: str | None,
    ) -> dict[str, Any]:
        """A real index in a savepoint (SQLite's DDL is transactional), always rolled back;
        the EXPLAIN after it under ``query_only``.

        Without ``sqlite_stat1`` SQLite's planner never looks at the rows (its estimates are
        fixed defaults), so the index is built on an empty copy of the table (same
        definition, same indexes, a TEMP table that the statement's unqualified name then
        resolves to): the same plan for a fraction of the cost (0.2 ms instead of ~30 ms on
        100k rows). With statistics the real table is indexed."""
        parsed = parse_ddl(ddl)
        cursor = connection.create_cursor()
        try:
            cursor.execute("PRAGMA query_only")
            was = int(cursor.fetchone()[0])
            cursor.execute("PRAGMA query_only = OFF")
            cursor.execute(f"SAVEPOINT {SAVEPOINT}")
            try:
                method = "real index, rolled back"
                if parsed and _empty_copy(cursor, parsed[1]):
                    method = EMPTY_COPY
                cursor.execute(ddl)
                cursor.execute("PRAGMA query_only = ON")
                return compare(before, explain(cursor), name, method)
            finally:
                cursor.execute("PRAGMA query_only = OFF")
                cursor.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
                cursor.execute(f"RELEASE SAVEPOINT {SAVEPOINT}")
                cursor.execute(f"PRAGMA query_only = {was}")
        finally:
            cursor.close()

    def explain(self, cursor: Any, sql: str, params: Any) -> PlanNode:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return parse_sqlite(cursor.fetchall())

    def table_rows(self, cursor: Any, table: str, cap: int) -> tuple[int | None, bool, str]:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'")
        if cursor.fetchone():
            cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = %s LIMIT 1", [table])
            row = cursor.fetchone()
            if row and row[0]:
                return (int(str(row[0]).split()[0]), True, "sqlite_stat1 (ANALYZE)")
        count = capped_count(cursor, quote(cursor, table), cap)
        return (count, False, "count" if count < cap else f"count stopped at {cap:,}")

    def count_rows(self, cursor: Any, sql: str, params: Any, timeout_ms: int) -> int | None:
        """Under the session's ``query_only``, stopped by a progress handler at the timeout."""
        with _deadline(cursor.connection, timeout_ms):
            cursor.execute(f"SELECT COUNT(*) FROM ({sql}) AS djdt_perf_m", params)
            return int(cursor.fetchone()[0])

    def analyze(
        self, connection: Any, cursor: Any, sql: str, params: Any, timeout_ms: int
    ) -> PlanNode:
        plan = self.explain(cursor, sql, params)
        with _deadline(connection.connection, timeout_ms):
            t0 = time.perf_counter()
            cursor.execute(sql, params)
            rows = len(cursor.fetchall()) if cursor.description else max(cursor.rowcount, 0)
            elapsed = (time.perf_counter() - t0) * 1000
        plan.actual_rows = rows
        plan.time_ms = round(elapsed, 3)
        plan.extra["measured"] = (
            "SQLite has no EXPLAIN ANALYZE: the statement was run "
            "and timed; rows are the rows it returned or changed"
        )
        return plan


@contextmanager
def _deadline(raw: Any, timeout_ms: int) -> Iterator[None]:
    """Abort the statements run inside after ``timeout_ms`` (a progress handler)."""
    deadline = time.perf_counter() + timeout_ms / 1000.0

    def _check() -> int:
        return 1 if time.perf_counter() > deadline else 0  # non-zero aborts the statement

    raw.set_progress_handler(_check, 1000)
    try:
        yield
    finally:
        raw.set_progress_handler(None, 0)


def _empty_copy(cursor: Any, table: str) -> bool:
    """Inside the caller's savepoint: a TEMP table named ``table`` with its definition and
    indexes and no rows, when the plan cannot depend on the rows (no ``sqlite_stat1``).
    False (nothing left behind) when that does not hold or the copy cannot be made."""
    cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
    if cursor.fetchone():
        return False
    cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [table])
    row = cursor.fetchone()
    if not row or not row[0] or not _CREATE_TABLE.match(row[0]):
        return False
    quoted = quote(cursor, table)
    statements = [_CREATE_TABLE.sub(f"CREATE TEMP TABLE {quoted}", row[0], count=1)]
    cursor.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
        "AND sql IS NOT NULL",
        [table],
    )
    for index, sql in cursor.fetchall():
        m = _CREATE_INDEX.match(sql)
        if not m:
            return False
        unique = "UNIQUE " if m.group(1) else ""
        statements.append(f"CREATE {unique}INDEX temp.{quote(cursor, index)}{sql[m.end() :]}")
    cursor.execute("SAVEPOINT djdt_perf_copy")
    try:
        for statement in statements:
            cursor.execute(statement)
    except Exception:  # e.g. a TEMP table of that name exists: index the real table
        cursor.execute("ROLLBACK TO SAVEPOINT djdt_perf_copy")
        return False
    finally:
        cursor.execute("RELEASE SAVEPOINT djdt_perf_copy")
    return True
