"""MariaDB and MySQL 8: ``EXPLAIN FORMAT=JSON``; MariaDB ``ANALYZE FORMAT=JSON``.

The JSON document comes back as text (we use our own cursor, so Django's
double encoding on MariaDB does not apply; the parser tolerates it anyway).
Sizes come from ``information_schema.TABLES.TABLE_ROWS`` (an estimate on InnoDB).
MariaDB has no partial indexes.

MariaDB evaluates functions while optimising (a DETERMINISTIC function in a WHERE
clause, a derived table ``SELECT f()``), so EXPLAIN can write, and a MyISAM write
or an AUTO_INCREMENT step is never rolled back. Outside the user's transaction the
panel's statements run in ``START TRANSACTION READ ONLY``, rolled back: the server
refuses every write there (InnoDB, MyISAM, inside stored functions; no
AUTO_INCREMENT step, since the INSERT never runs). Inside the user's transaction
no read-only subtransaction exists (and ``START TRANSACTION`` would commit the
user's work), so a statement is explained there only when it calls no stored
function, reads no sequence and reads no view; the others are not run, and the
panel says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..plans import PlanNode, parse_mysql, parse_text
from .base import NotExplained, Run, Vendor, capped_count, quote

#: ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: a write refused by the server.
READ_ONLY_ERRNO = 1792
_CALL = re.compile(r"`?([A-Za-z_][\w$]*)`?\s*\(")
_SEQUENCE = re.compile(
    r"\b(?:nextval|lastval|setval)\s*\(|\b(?:next|previous)\s+value\s+for\b"
    r"|\.\s*(?:nextval|currval|lastval)\b",
    re.IGNORECASE,
)
_BACKTICKED = re.compile(r"`([^`]+)`")
_NAMED = re.compile(r"`([^`]+)`|\b(?:from|join)\s+([A-Za-z_][\w$]*)", re.IGNORECASE)


def current_database(connection: Any) -> str | None:
    """``DATABASE()`` on the raw driver connection (never through Django's cursor: this runs
    inside the panel's execute wrapper, for each new shape), None without one."""
    raw = connection.connection
    if raw is None:
        return None
    cur = raw.cursor()
    try:
        cur.execute("SELECT DATABASE()")
        row = cur.fetchone()
    finally:
        cur.close()
    return str(row[0]) if row and row[0] is not None else None


class MySQL(Vendor):
    supports_analyze = True
    supports_partial_index = False
    schema_is_database = True

    def __init__(self, mariadb: bool) -> None:
        self.mariadb = mariadb
        self.name = "mariadb" if mariadb else "mysql"
        #: Set by :meth:`session`: inside the user's transaction, where nothing is read-only.
        self.in_user_transaction = False

    def counters(self, cursor: Any, sql: str) -> list[str]:
        names = sorted({m.lower() for m in _BACKTICKED.findall(sql)})
        if not names:
            return []
        marks = ", ".join(["%s"] * len(names))
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE "
            "TABLE_SCHEMA = DATABASE() AND EXTRA LIKE '%%auto_increment%%' "
            f"AND LOWER(TABLE_NAME) IN ({marks}) ORDER BY 1",
            names,
        )
        found = [f"AUTO_INCREMENT of {table}.{column}" for table, column in cursor.fetchall()]
        if _SEQUENCE.search(sql):
            found.append("the sequences it reads")
        return found

    def schema(self, connection: Any, cursor: Any = None) -> str | None:
        """The current database: a view may ``USE`` another before the end of the view,
        where the EXPLAINs run."""
        if cursor is not None:
            cursor.execute("SELECT DATABASE()")
            row = cursor.fetchone()
            return str(row[0]) if row and row[0] is not None else None
        return current_database(connection)

    def use_schema(self, cursor: Any, schema: str) -> None:
        cursor.execute(f"USE {quote(cursor, schema, '`')}")

    def indexes(
        self, connection: Any, table: str, schema: str | None = None
    ) -> list[tuple[str, list[str]]]:
        with connection.connection.cursor() as cur:
            cur.execute(
                "SELECT INDEX_NAME, COLUMN_NAME, COLLATION FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = COALESCE(%s, DATABASE()) AND TABLE_NAME = %s "
                "ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                [schema, table],
            )
            out: dict[str, list[str]] = {}
            for name, column, collation in cur.fetchall():
                out.setdefault(str(name), []).append(
                    f"{column} DESC" if collation == "D" else str(column)
                )
        return list(out.items())

    def refused_write(self, exc: BaseException) -> bool:
        args: tuple[Any, ...] = exc.args
        return bool(args) and args[0] == READ_ONLY_ERRNO

    @contextmanager
    def session(self, connection: Any, timeout_ms: int | None = None) -> Iterator[Run]:
        cursor = connection.create_cursor()
        try:
            # ``@@in_transaction`` stays 0 after statements on MyISAM only, while Django's
            # atomic block (and its savepoints) is open: either one means "the user's".
            cursor.execute("SELECT @@in_transaction")
            self.in_user_transaction = (
                bool(cursor.fetchone()[0])
                or connection.in_atomic_block
                or not connection.get_autocommit()
            )
            if not self.in_user_transaction:
                cursor.execute("START TRANSACTION READ ONLY")

            def run(fn: Callable[[Any], Any]) -> Any:
                return fn(cursor)

            try:
                yield run
            finally:
                if not self.in_user_transaction:
                    cursor.execute("ROLLBACK")
        finally:
            cursor.close()

    def guard(self, cursor: Any, sql: str) -> None:
        """Inside the user's transaction: refuse a statement that may run code that writes."""
        if not self.in_user_transaction:
            return
        why = ""
        if _SEQUENCE.search(sql):
            why = "reads a sequence"
        else:
            names = sorted({m.lower() for m in _CALL.findall(sql)})
            functions = self._stored(cursor, "FUNCTION", names)
            if functions:
                why = f"calls the stored function {', '.join(functions)}"
            else:
                tables = sorted({(a or b).lower() for a, b in _NAMED.findall(sql)})
                views = self._stored(cursor, "VIEW", tables)
                if views:
                    why = f"reads the view {', '.join(views)}, which may call functions"
        if why:
            raise NotExplained(
                "inside your transaction MariaDB/MySQL cannot make EXPLAIN read-only, and this "
                f"query {why}: not explained (nothing was run)"
            )

    def _stored(self, cursor: Any, kind: str, names: list[str]) -> list[str]:
        """Which of ``names`` are stored functions (any schema) or views (this schema)."""
        if not names:
            return []
        marks = ", ".join(["%s"] * len(names))
        if kind == "FUNCTION":
            cursor.execute(
                "SELECT DISTINCT LOWER(ROUTINE_NAME) FROM information_schema.ROUTINES "
                f"WHERE ROUTINE_TYPE = 'FUNCTION' AND LOWER(ROUTINE_NAME) IN ({marks})",
                names,
            )
        else:
            cursor.execute(
                "SELECT LOWER(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                f"DATABASE() AND TABLE_TYPE = 'VIEW' AND LOWER(TABLE_NAME) IN ({marks})",
                names,
            )
        return sorted(str(row[0]) for row in cursor.fetchall())

    def explain(self, cursor: Any, sql: str, params: Any) -> PlanNode:
        self.guard(cursor, sql)
        cursor.execute(f"EXPLAIN FORMAT=JSON {sql}", params)
        return parse_mysql(cursor.fetchone()[0])

    def table_rows(self, cursor: Any, table: str, cap: int) -> tuple[int | None, bool, str]:
        cursor.execute(
            "SELECT TABLE_ROWS, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            [table],
        )
        row = cursor.fetchone()
        if row and row[0] is not None:
            return (int(row[0]), True, "information_schema.TABLES.TABLE_ROWS estimate")
        if not row or row[1] != "BASE TABLE":  # counting a view would run it
            return (None, False, "not a table: not counted")
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

    def count_rows(self, cursor: Any, sql: str, params: Any, timeout_ms: int) -> int | None:
        """Runs the statement (inside the session's read-only transaction, or after
        :meth:`guard` inside the user's), with a timeout."""
        self.guard(cursor, sql)
        count = f"SELECT COUNT(*) FROM ({sql}) AS djdt_perf_m"
        if self.mariadb:
            seconds = max(timeout_ms, 1) / 1000.0
            count = f"SET STATEMENT max_statement_time={seconds:.3f} FOR {count}"
        else:
            count = count.replace(
                "SELECT", f"SELECT /*+ MAX_EXECUTION_TIME({int(timeout_ms)}) */", 1
            )
        cursor.execute(count, params)
        return int(cursor.fetchone()[0])

    def analyze(
        self, connection: Any, cursor: Any, sql: str, params: Any, timeout_ms: int
    ) -> PlanNode:
        seconds = max(timeout_ms, 1) / 1000.0
        self.guard(cursor, sql)
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
