"""MariaDB and MySQL 8: ``EXPLAIN FORMAT=JSON``; MariaDB ``ANALYZE FORMAT=JSON``.

The JSON document comes back as text (we use our own cursor, so Django's
double encoding on MariaDB does not apply; the parser tolerates it anyway).
Sizes come from ``information_schema.TABLES.TABLE_ROWS`` (an estimate on InnoDB).
MariaDB has no partial indexes.
"""

from __future__ import annotations

from typing import Any

from ..plans import PlanNode, parse_mysql, parse_text
from .base import Vendor, capped_count, quote


class MySQL(Vendor):
    supports_analyze = True
    supports_partial_index = False

    def __init__(self, mariadb: bool) -> None:
        self.mariadb = mariadb
        self.name = "mariadb" if mariadb else "mysql"

    def explain(self, cursor: Any, sql: str, params: Any) -> PlanNode:
        cursor.execute(f"EXPLAIN FORMAT=JSON {sql}", params)
        return parse_mysql(cursor.fetchone()[0])

    def table_rows(self, cursor: Any, table: str, cap: int) -> tuple[int | None, bool, str]:
        cursor.execute(
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            [table],
        )
        row = cursor.fetchone()
        if row and row[0] is not None:
            return (int(row[0]), True, "information_schema.TABLES.TABLE_ROWS estimate")
        count = capped_count(cursor, quote(cursor, table, "`"), cap)
        return (count, False, "count" if count < cap else f"count stopped at {cap:,}")

    def table_engines(self, cursor: Any, tables: list[str]) -> dict[str, str]:
        if not tables:
            return {}
        marks = ", ".join(["%s"] * len(tables))
        cursor.execute(
            "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})",
            list(tables),
        )
        return {str(name): str(engine) for name, engine in cursor.fetchall()}

    def analyze(
        self, connection: Any, cursor: Any, sql: str, params: Any, timeout_ms: int
    ) -> PlanNode:
        seconds = max(timeout_ms, 1) / 1000.0
        if self.mariadb:
            cursor.execute(
                f"SET STATEMENT max_statement_time={seconds:.3f} FOR ANALYZE FORMAT=JSON {sql}",
                params,
            )
            return parse_mysql(cursor.fetchone()[0])
        # MySQL 8: max_execution_time covers SELECT only; EXPLAIN ANALYZE prints a tree.
        cursor.execute(f"SET SESSION max_execution_time = {int(timeout_ms)}")
        cursor.execute(f"EXPLAIN ANALYZE {sql}", params)
        return parse_text(cursor.fetchall())
