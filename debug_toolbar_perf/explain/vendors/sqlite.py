"""SQLite: ``EXPLAIN QUERY PLAN`` (no row counts), sizes from sqlite_stat1 or a capped count.

SQLite has no EXPLAIN ANALYZE. The on-demand analysis runs the statement itself
(inside a transaction rolled back by the caller), fetches its rows, and reports
the rows and the time next to the query plan; a progress handler enforces the
timeout.
"""

from __future__ import annotations

import time
from typing import Any

from ..plans import PlanNode, parse_sqlite
from .base import Vendor, capped_count, quote


class SQLite(Vendor):
    name = "sqlite"
    supports_analyze = True
    supports_partial_index = True

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

    def analyze(
        self, connection: Any, cursor: Any, sql: str, params: Any, timeout_ms: int
    ) -> PlanNode:
        plan = self.explain(cursor, sql, params)
        raw = connection.connection
        deadline = time.perf_counter() + timeout_ms / 1000.0

        def _check() -> int:
            return 1 if time.perf_counter() > deadline else 0  # non-zero aborts the statement

        raw.set_progress_handler(_check, 1000)
        try:
            t0 = time.perf_counter()
            cursor.execute(sql, params)
            rows = len(cursor.fetchall()) if cursor.description else max(cursor.rowcount, 0)
            elapsed = (time.perf_counter() - t0) * 1000
        finally:
            raw.set_progress_handler(None, 0)
        plan.actual_rows = rows
        plan.time_ms = round(elapsed, 3)
        plan.extra["measured"] = (
            "SQLite has no EXPLAIN ANALYZE: the statement was run "
            "and timed; rows are the rows it returned or changed"
        )
        return plan
