"""EXPLAIN ANALYZE on demand, for one stored shape, without ever changing data.

The statement and its typed parameters come from the panel's stored stats
(never from the browser). A SELECT (which can call a function that writes)
runs where the database refuses writes (``Vendor.session``), rolled back. A
write, when allowed, runs inside ``transaction.atomic()`` marked for rollback;
nested in an outer transaction that is a savepoint, so an error (on
PostgreSQL, an aborted transaction) is rolled back to it and the outer
transaction stays usable. Writes are refused unless ``ALLOW_ANALYZE_WRITES``;
on MariaDB they are also refused when a table is not InnoDB (MyISAM/Aria
writes are not rolled back). Sequences (PostgreSQL) and AUTO_INCREMENT
counters (MariaDB) are not transactional: an INSERT may still advance them.
"""

from __future__ import annotations

import re
import time
from typing import Any

from django.db import connections, transaction

from .params import OpaqueParam, decode_params
from .plans import number_nodes
from .shapes import statement_kind
from .vendors import vendor_for
from .vendors.base import WRITES_REFUSED, NotExplained

_BACKTICKED = re.compile(r"`([^`]+)`")


class AnalyzeRefused(Exception):
    """The panel will not run this statement (the message says why and how to allow it)."""


def run_analyze(shape: dict[str, Any], *, allow_writes: bool, timeout_ms: int) -> dict[str, Any]:
    """``{"plan", "ms", "notes"}``; raises :class:`AnalyzeRefused` or the database's error."""
    sql = str(shape.get("sql") or "")
    alias = str(shape.get("alias") or "")
    kind = statement_kind(sql)  # from the stored SQL, not from any stored label
    if kind == "other":
        raise AnalyzeRefused("Only SELECT, INSERT, UPDATE and DELETE statements are analysed.")
    if kind != "select" and not allow_writes:
        raise AnalyzeRefused(
            f"This is an {kind.upper()}: EXPLAIN ANALYZE would execute it. Set "
            "DEBUG_TOOLBAR_PERF['EXPLAIN']['ALLOW_ANALYZE_WRITES'] = True to analyse it "
            "inside a transaction that is always rolled back."
        )
    if shape.get("many"):
        raise AnalyzeRefused("executemany() statements are not analysed.")
    if alias not in connections:
        raise AnalyzeRefused(f"Unknown database alias {alias!r}.")
    try:
        params = decode_params(shape.get("params"))
    except (OpaqueParam, ValueError, TypeError) as exc:
        raise AnalyzeRefused(f"The parameters cannot be rebuilt with their types: {exc}") from exc
    connection = connections[alias]
    vendor = vendor_for(connection)
    if not vendor.supports_analyze:
        raise AnalyzeRefused(f"EXPLAIN ANALYZE is not supported on {connection.vendor}.")
    notes = []
    connection.ensure_connection()
    if kind == "select":
        # A SELECT can call a function that writes: run it where the database refuses
        # writes (``Vendor.session``), rolled back whatever happens.
        try:
            with vendor.session(connection, timeout_ms) as run:
                t0 = time.perf_counter()
                plan = run(lambda cur: vendor.analyze(connection, cur, sql, params, timeout_ms))
                elapsed = (time.perf_counter() - t0) * 1000
        except NotExplained as exc:
            raise AnalyzeRefused(f"Not analysed: {exc}.") from exc
        except Exception as exc:
            if vendor.refused_write(exc):
                raise AnalyzeRefused(f"Not analysed: {WRITES_REFUSED}.") from exc
            raise
    else:
        with transaction.atomic(using=alias):
            connection.set_rollback(True)
            cursor = connection.create_cursor()
            try:
                if connection.vendor == "mysql":
                    _require_transactional_tables(vendor, cursor, sql)
                counters = vendor.counters(cursor, sql)
                t0 = time.perf_counter()
                plan = vendor.analyze(connection, cursor, sql, params, timeout_ms)
                elapsed = (time.perf_counter() - t0) * 1000
            finally:
                cursor.close()
                connection.set_rollback(True)
    if kind != "select":
        notes.append(
            "The statement ran inside a transaction that was rolled back: no row was changed."
        )
        if counters:
            notes.append(
                f"Not rolled back ({connection.vendor} counters are not transactional): "
                f"{', '.join(counters)} may have advanced."
            )
    return {
        "plan": number_nodes(plan.to_json()),
        "ms": round(elapsed, 3),
        "notes": notes,
        "kind": kind,
    }


def _require_transactional_tables(vendor: Any, cursor: Any, sql: str) -> None:
    tables = sorted(set(_BACKTICKED.findall(sql)))
    engines = vendor.table_engines(cursor, tables)
    bad = {t: e for t, e in engines.items() if e.lower() != "innodb"}
    if bad or not engines:
        listed = ", ".join(f"{t} ({e})" for t, e in bad.items()) or "unknown tables"
        raise AnalyzeRefused(
            f"Not analysed: {listed} cannot be rolled back (only InnoDB tables can)."
        )
