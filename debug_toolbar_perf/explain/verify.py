"""Ask the database's planner whether it would use a suggested index, before showing it.

A suggestion is only text (:mod:`.indexes`); the planner decides. For each ``CREATE INDEX``
the findings would show, while the request's live parameters are still there:

* PostgreSQL with HypoPG: a hypothetical index (``hypopg_create_index``, seen only by this
  backend's EXPLAIN; works in the read-only transaction), then ``hypopg_reset()``;
* PostgreSQL without it (and for GIN trigram indexes, which HypoPG cannot make): a real
  ``CREATE INDEX`` in a savepoint with ``lock_timeout`` / ``statement_timeout``, on tables of
  at most :data:`REAL_INDEX_MAX_ROWS` rows, the EXPLAIN switched to read-only, then rolled back;
* SQLite: the same in a savepoint (its DDL is transactional), ``query_only`` around the EXPLAIN;
* MariaDB/MySQL: no hypothetical or transactional DDL: "not verified by the planner".

The result per DDL: ``used`` (the plan names the index), the plan's cost (PostgreSQL) or its
steps (SQLite) before and after, the method and the time it took. An index that an existing
one (or the primary key, in either direction) already provides is never verified nor shown.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from .plans import PlanNode

#: A real index is built only on tables this small (PostgreSQL without HypoPG).
REAL_INDEX_MAX_ROWS = 200_000
LOCK_TIMEOUT_MS = 100
NOT_VERIFIED = "not verified by the planner"
_DDL = re.compile(
    r"^CREATE INDEX (?P<name>\S+) ON (?P<table>\S+)(?: USING (?P<using>\w+))? \((?P<cols>.*)\)"
    r"(?: WHERE (?P<where>.+))?$"
)
SAVEPOINT = "djdt_perf_verify"

Check = dict[str, Any]


def parse_ddl(ddl: str) -> tuple[str, str, list[str], str | None, str | None] | None:
    """``(name, table, columns, using, where)`` of a suggestion from :mod:`.indexes`."""
    m = _DDL.match(ddl)
    if not m:
        return None
    cols = [c.strip() for c in m["cols"].split(",")]
    return (m["name"].strip('"'), m["table"].strip('"'), cols, m["using"], m["where"])


def duplicate_of(
    columns: list[str], where: str | None, existing: list[tuple[str, list[str]]]
) -> str | None:
    """The existing index that already provides ``columns`` (a prefix of its columns, in the
    same directions or all reversed: a btree reads both ways), or None."""
    if where is not None:
        return None
    wanted = [_norm(c) for c in columns]
    flipped = [(c, not desc) for c, desc in wanted]
    for name, cols in existing:
        have = [_norm(c) for c in cols][: len(wanted)]
        if have in (wanted, flipped) or (
            [c for c, _ in have] == [c for c, _ in wanted] and len(wanted) == 1
        ):
            return name
    return None


def _norm(column: str) -> tuple[str, bool]:
    parts = column.replace('"', "").split()
    return (parts[0].lower() if parts else "", len(parts) > 1 and parts[1].upper() == "DESC")


def _used(plan: PlanNode, name: str) -> bool:
    stack = [plan]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.index and name in node.index:
            return True
    return False


def _steps(plan: PlanNode) -> list[str]:
    out: list[str] = []
    stack = [plan]
    while stack:
        node = stack.pop(0)
        stack.extend(node.children)
        if node.type and node.type.lower() != "query plan":  # the roots, not steps
            # SQLite's step text names its index already ("SCAN t USING INDEX i")
            named = not node.index or node.index in node.type
            out.append(node.type if named else f"{node.type} {node.index}")
    return out


def verify(
    vendor: Any,
    connection: Any,
    ddl: str,
    explain: Callable[[Any], PlanNode],
    before: PlanNode,
    rows: int | None,
    timeout_ms: int,
    schema: str | None = None,
) -> Check:
    """Whether the planner would use ``ddl``'s index for the statement ``explain`` explains
    (``before``: its plan without the index; ``schema``: see ``Vendor.indexes``)."""
    parsed = parse_ddl(ddl)
    if parsed is None:
        return {"method": NOT_VERIFIED, "used": None}
    name, table, cols, using, where = parsed
    started = time.perf_counter()
    try:
        existing = vendor.indexes(connection, table, schema)
        dup = duplicate_of(cols, where, existing)
        if dup:
            return {"method": "existing index", "used": False, "duplicate_of": dup}
        result: Check = vendor.verify_index(
            connection, ddl, name, explain, before, rows, timeout_ms, using
        )
    except Exception as exc:  # the suggestion is then not shown as verified
        result = {
            "method": NOT_VERIFIED,
            "used": None,
            "error": f"{type(exc).__name__}: {exc}"[:300],
        }
    result["ms"] = round((time.perf_counter() - started) * 1000, 3)
    return result


def compare(before: PlanNode, after: PlanNode, name: str, method: str) -> Check:
    """The check of one index from the plans without and with it."""
    return {
        "method": method,
        "used": _used(after, name),
        "cost_before": before.cost,
        "cost_after": after.cost,
        "plan_before": _steps(before)[:4],
        "plan_after": _steps(after)[:4],
    }
