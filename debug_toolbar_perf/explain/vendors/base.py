"""The vendor interface and the fallback for other backends.

A vendor knows three things: how to EXPLAIN a statement on a raw cursor, how
to read a table's size cheaply, and how to run EXPLAIN ANALYZE with a timeout.
``session()`` hands out a raw DB-API cursor (``connection.create_cursor()``,
invisible to Django's query log, execute wrappers and the toolbar's SQL panel)
and a ``run`` function that protects the user's transaction around each call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..plans import PlanNode, parse_text

Run = Callable[[Callable[[Any], Any]], Any]


class Vendor:
    """Another backend: raw ``EXPLAIN`` text, no sizes, no ANALYZE."""

    name = "other"
    supports_analyze = False
    supports_partial_index = False

    def cannot_run(self, connection: Any) -> str | None:
        """Why the panel must not touch this connection now, or None."""
        if connection.connection is None:
            return "the connection was closed before the end of the view"
        if getattr(connection, "needs_rollback", False):
            return (
                "the transaction is marked for rollback after an error: "
                "nothing was explained, to leave it exactly as it was"
            )
        return None

    @contextmanager
    def session(self, connection: Any) -> Iterator[Run]:
        cursor = connection.create_cursor()
        try:
            yield lambda fn: fn(cursor)
        finally:
            cursor.close()

    def explain(self, cursor: Any, sql: str, params: Any) -> PlanNode:
        cursor.execute(f"EXPLAIN {sql}", params)
        return parse_text(cursor.fetchall())

    def table_rows(self, cursor: Any, table: str, cap: int) -> tuple[int | None, bool, str]:
        """``(rows, is_estimate, source)``."""
        return (None, False, "not supported on this database")

    def analyze(
        self, connection: Any, cursor: Any, sql: str, params: Any, timeout_ms: int
    ) -> PlanNode:
        raise NotImplementedError(f"EXPLAIN ANALYZE is not supported on {connection.vendor}")


def quote(connection_or_cursor: Any, name: str, quote_char: str = '"') -> str:
    return quote_char + name.replace(quote_char, quote_char * 2) + quote_char


def capped_count(cursor: Any, quoted_table: str, cap: int, placeholder: str = "%s") -> int:
    """COUNT(*) that stops at ``cap`` rows: cheap on huge tables."""
    cursor.execute(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {quoted_table} LIMIT {int(cap)}) AS djdt_perf_t"
    )
    return int(cursor.fetchone()[0])
