"""PostgreSQL: ``EXPLAIN (FORMAT JSON)``, planner row estimates, read-only transactions.

PostgreSQL runs IMMUTABLE functions with constant arguments while planning and
STABLE ones while estimating, so even a plain EXPLAIN can call a (mislabelled)
function that writes or calls ``nextval``. Every panel statement therefore runs
where the server refuses writes and ``nextval``:

* no transaction open: our own ``READ ONLY`` transaction, rolled back at the end;
* inside the user's transaction: a savepoint, then ``SET LOCAL
  transaction_read_only = on`` (switching *to* read-only is allowed mid-transaction),
  rolled back to the savepoint after each statement, never released with its work.

Each call also runs in its own savepoint, so an EXPLAIN that fails leaves the
transaction usable; ``statement_timeout`` bounds it. A transaction already
aborted is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..plans import PlanNode, parse_postgresql
from ..verify import LOCK_TIMEOUT_MS, NOT_VERIFIED, REAL_INDEX_MAX_ROWS, compare
from .base import Run, Vendor, capped_count, quote

#: SQLSTATE 25006 read_only_sql_transaction: a write (or ``nextval``) refused.
READ_ONLY_SQLSTATE = "25006"

SAVEPOINT = "djdt_perf_explain"
_INDEXDEF = re.compile(r" USING (\w+) \((.*)\)$")
_QUOTED = re.compile(r'"([^"]+)"')
_NEXTVAL = re.compile(r"\bnextval\s*\(", re.IGNORECASE)


def _status(raw: Any) -> str:
    info = getattr(raw, "info", None)  # psycopg 3
    if info is not None:
        return info.transaction_status.name  # IDLE, INTRANS, INERROR, ...
    status = raw.get_transaction_status()  # psycopg2
    return {0: "IDLE", 1: "ACTIVE", 2: "INTRANS", 3: "INERROR"}.get(status, "UNKNOWN")


class PostgreSQL(Vendor):
    name = "postgresql"
    supports_analyze = True
    supports_partial_index = True
    _hypopg: bool | None = None

    def cannot_run(self, connection: Any) -> str | None:
        reason = super().cannot_run(connection)
        if reason:
            return reason
        if _status(connection.connection) == "INERROR":
            return (
                "the transaction was aborted by an earlier error: nothing was explained, "
                "to leave it exactly as it was"
            )
        return None

    def counters(self, cursor: Any, sql: str) -> list[str]:
        names = sorted(set(_QUOTED.findall(sql)))
        if not names:
            return []
        cursor.execute(
            "SELECT DISTINCT s.oid::regclass::text FROM pg_depend d "
            "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
            "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass "
            "AND d.refobjid IN (SELECT to_regclass(quote_ident(n)) FROM unnest(%s::text[]) n) "
            "ORDER BY 1",
            [names],
        )
        found = [f"sequence {row[0]}" for row in cursor.fetchall()]
        if _NEXTVAL.search(sql):
            found.append("the sequences its nextval() calls")
        return found

    def schema(self, connection: Any, cursor: Any = None) -> str | None:
        """``search_path`` now: a view (a tenant switch) may change it before the end of the
        view, where the EXPLAINs run. One round trip per new shape."""
        if cursor is None:
            raw = connection.connection
            status = _status(raw) if raw is not None else "INERROR"
            if status == "INERROR" or (status == "IDLE" and not raw.autocommit):
                return None  # would fail, or open a transaction of its own
            with raw.cursor() as own:
                own.execute("SHOW search_path")
                return str(own.fetchone()[0])
        cursor.execute("SHOW search_path")
        return str(cursor.fetchone()[0])

    def use_schema(self, cursor: Any, schema: str) -> None:
        cursor.execute("SELECT set_config('search_path', %s, true)", [schema])

    def indexes(
        self, connection: Any, table: str, schema: str | None = None
    ) -> list[tuple[str, list[str]]]:
        with connection.connection.cursor() as cur:
            cur.execute(
                "SELECT c.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
                "JOIN pg_class c ON c.oid = x.indexrelid "
                "WHERE x.indrelid = to_regclass(%s) AND x.indpred IS NULL",
                [quote(cur, table)],
            )
            rows = cur.fetchall()
        out = []
        for name, definition in rows:
            m = _INDEXDEF.search(definition)
            if m and m.group(1) == "btree":
                out.append((str(name), [c.strip() for c in m.group(2).split(",")]))
        return out

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
        if using is None and self.has_hypopg(connection):
            with self.session(connection, timeout_ms) as run:

                def hypothetical(cur: Any) -> dict[str, Any]:
                    cur.execute("SELECT indexname FROM hypopg_create_index(%s)", [ddl])
                    hypo = str(cur.fetchone()[0])
                    try:
                        return compare(before, explain(cur), hypo, "HypoPG (hypothetical index)")
                    finally:
                        cur.execute("SELECT hypopg_reset()")

                result: dict[str, Any] = run(hypothetical)
                return result
        if rows is None or rows > REAL_INDEX_MAX_ROWS:
            return {
                "method": NOT_VERIFIED,
                "used": None,
                "why": f"no HypoPG, and no real index is built on a table over "
                f"{REAL_INDEX_MAX_ROWS:,} rows to check",
            }
        return self._real_index(connection, ddl, name, explain, before, timeout_ms)

    def _real_index(
        self,
        connection: Any,
        ddl: str,
        name: str,
        explain: Callable[[Any], PlanNode],
        before: PlanNode,
        timeout_ms: int,
    ) -> dict[str, Any]:
        """A real index, built in a savepoint that is always rolled back (DDL is
        transactional); the EXPLAIN after it runs read-only."""
        raw = connection.connection
        own = _status(raw) != "INTRANS"
        cursor = connection.create_cursor()
        try:
            if own and raw.autocommit:
                cursor.execute("BEGIN")
            cursor.execute(f"SAVEPOINT {SAVEPOINT}")
            try:
                cursor.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
                cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
                cursor.execute(ddl)
                cursor.execute("SET LOCAL transaction_read_only = on")
                return compare(before, explain(cursor), name, "real index, rolled back")
            finally:
                cursor.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
                cursor.execute(f"RELEASE SAVEPOINT {SAVEPOINT}")
                if own:
                    cursor.execute("ROLLBACK")
        finally:
            cursor.close()

    def has_hypopg(self, connection: Any) -> bool:
        if self._hypopg is None:
            with connection.connection.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'hypopg'")
                self._hypopg = cur.fetchone() is not None
        return self._hypopg

    def refused_write(self, exc: BaseException) -> bool:
        code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        return code == READ_ONLY_SQLSTATE

    @contextmanager
    def session(self, connection: Any, timeout_ms: int | None = None) -> Iterator[Run]:
        raw = connection.connection
        own = _status(raw) != "INTRANS"  # no transaction of the user's: open our own
        cursor = connection.create_cursor()
        limits = ["SET LOCAL transaction_read_only = on"]
        if timeout_ms:
            limits.append(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        if own:
            if raw.autocommit:
                cursor.execute("BEGIN")
            for statement in limits:  # the transaction's first statements
                cursor.execute(statement)

        def run(fn: Callable[[Any], Any]) -> Any:
            cursor.execute(f"SAVEPOINT {SAVEPOINT}")
            try:
                if not own:
                    for statement in limits:
                        cursor.execute(statement)
                return fn(cursor)
            finally:
                # Always undone, success or not: whatever the call did is discarded with
                # the savepoint's work (and the SET LOCALs with it); only then is the
                # emptied savepoint released.
                cursor.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
                cursor.execute(f"RELEASE SAVEPOINT {SAVEPOINT}")

        try:
            yield run
        finally:
            try:
                if own and _status(raw) != "IDLE":
                    cursor.execute("ROLLBACK")  # ours: leave the connection idle as found
            finally:
                cursor.close()

    def explain(self, cursor: Any, sql: str, params: Any) -> PlanNode:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        return parse_postgresql(cursor.fetchone()[0])

    def table_rows(self, cursor: Any, table: str, cap: int) -> tuple[int | None, bool, str]:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [quote(cursor, table)],
        )
        row = cursor.fetchone()
        if row and row[0] is not None and row[0] >= 0:
            return (int(row[0]), True, "planner estimate (pg_class.reltuples)")
        count = capped_count(cursor, quote(cursor, table), cap)
        return (
            count,
            False,
            "count (table never analysed)" if count < cap else f"count stopped at {cap:,}",
        )

    def analyze(
        self, connection: Any, cursor: Any, sql: str, params: Any, timeout_ms: int
    ) -> PlanNode:
        cursor.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params)
        return parse_postgresql(cursor.fetchone()[0])
