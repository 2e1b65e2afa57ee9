"""PostgreSQL: ``EXPLAIN (FORMAT JSON)``, planner row estimates, savepoints.

Inside the user's transaction every panel statement runs in its own savepoint:
an EXPLAIN that fails would otherwise abort the transaction and every later
statement of the request or test. A transaction already aborted is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..plans import PlanNode, parse_postgresql
from .base import Run, Vendor, capped_count, quote

SAVEPOINT = "djdt_perf_explain"


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

    @contextmanager
    def session(self, connection: Any) -> Iterator[Run]:
        raw = connection.connection
        status = _status(raw)
        opened_implicitly = status == "IDLE" and not raw.autocommit
        cursor = connection.create_cursor()

        def run(fn: Callable[[Any], Any]) -> Any:
            if _status(raw) != "INTRANS":
                return fn(cursor)
            cursor.execute(f"SAVEPOINT {SAVEPOINT}")
            try:
                result = fn(cursor)
            except BaseException:
                cursor.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
                cursor.execute(f"RELEASE SAVEPOINT {SAVEPOINT}")
                raise
            cursor.execute(f"RELEASE SAVEPOINT {SAVEPOINT}")
            return result

        try:
            yield run
        finally:
            cursor.close()
            if opened_implicitly and _status(raw) == "INTRANS":
                raw.rollback()  # we started it: leave the connection idle as we found it

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
