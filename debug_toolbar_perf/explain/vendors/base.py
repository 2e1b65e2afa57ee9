"""The vendor interface and the fallback for other backends.

A vendor knows three things: how to EXPLAIN a statement on a raw cursor, how
to read a table's size cheaply, and how to run EXPLAIN ANALYZE with a timeout.
``session()`` hands out a raw DB-API cursor (``connection.create_cursor()``,
invisible to Django's query log, execute wrappers and the toolbar's SQL panel)
and a ``run`` function that runs each call where *the database itself* refuses
writes, and rolls it back (never releases or commits it): classifying the SQL
text cannot see a function that writes, a sequence, or a write while planning.
A backend whose vendor cannot promise that is not touched at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..plans import PlanNode, parse_text

Run = Callable[[Callable[[Any], Any]], Any]

#: What the panel shows when the database refused a write made by a panel statement.
WRITES_REFUSED = "this query calls code that writes; not explained"


class NotExplained(Exception):
    """The panel declined to run a statement; the message says why (shown as is)."""


class Vendor:
    """Another backend: nothing is run, since no read-only guarantee is known for it."""

    name = "other"
    supports_analyze = False
    supports_partial_index = False
    #: :meth:`use_schema` lasts until changed back (MariaDB/MySQL ``USE``), and a schema is a
    #: database name that :meth:`indexes` can look in.
    schema_is_database = False

    def cannot_run(self, connection: Any) -> str | None:
        """Why the panel must not touch this connection now, or None."""
        if type(self) is Vendor:
            return (
                f"the panel cannot make {connection.vendor} refuse writes, so it runs nothing there"
            )
        if connection.connection is None:
            return "the connection was closed before the end of the view"
        if getattr(connection, "needs_rollback", False):
            return (
                "the transaction is marked for rollback after an error: "
                "nothing was explained, to leave it exactly as it was"
            )
        return None

    def counters(self, cursor: Any, sql: str) -> list[str]:
        """The non-transactional counters (sequences, AUTO_INCREMENT) a write to the tables
        ``sql`` names may advance: named in the ANALYZE warning, since no rollback undoes them."""
        return []

    def schema(self, connection: Any, cursor: Any = None) -> str | None:
        """The schema search path in force on ``connection`` now (None: not tracked)."""
        return None

    def use_schema(self, cursor: Any, schema: str) -> None:
        """Make ``schema`` (from :meth:`schema`) the search path, for the current panel call
        only (it is undone with it; with :attr:`schema_is_database`, until changed back)."""

    def indexes(
        self, connection: Any, table: str, schema: str | None = None
    ) -> list[tuple[str, list[str]]]:
        """``(name, ["col", "col DESC"])`` of ``table``'s full (non-partial) indexes, the
        primary key included: what a suggestion must not duplicate. ``schema``: the
        database the table is in, where :attr:`schema_is_database` (else ignored)."""
        return []

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
        """Would the planner use ``ddl``'s index (see :mod:`..verify`)?"""
        return {"method": "not verified by the planner", "used": None}

    def refused_write(self, exc: BaseException) -> bool:
        """True when ``exc`` is the database refusing a write in a read-only context."""
        return False

    @contextmanager
    def session(self, connection: Any, timeout_ms: int | None = None) -> Iterator[Run]:
        """A raw cursor and a ``run`` that protects each call (see the module docstring)."""
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

    def count_rows(self, cursor: Any, sql: str, params: Any, timeout_ms: int) -> int | None:
        """Rows ``sql`` (a SELECT, its own LIMIT capping the count) returns, or None."""
        return None

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
