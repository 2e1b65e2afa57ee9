"""One plan-tree model for every database, and the parsers that build it.

PostgreSQL (``EXPLAIN (FORMAT JSON)``), MariaDB/MySQL (``EXPLAIN FORMAT=JSON``,
MariaDB ``ANALYZE FORMAT=JSON``) and SQLite (``EXPLAIN QUERY PLAN`` rows) speak
different dialects; findings and templates only ever see :class:`PlanNode`
trees, stored as plain JSON dicts (``PlanNode.to_json``).

Everything here is pure: raw EXPLAIN output in, nodes out. Database access
lives in ``engines/explain``.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

#: Node kinds shared across vendors (``PlanNode.kind``): findings key on these.
FULL_SCAN = "full_scan"
INDEX_SCAN = "index_scan"
SORT = "sort"
TEMP = "temporary"
JOIN = "join"
OTHER = "other"


@dataclass
class PlanNode:
    """One step of a plan. Numbers are None when the engine does not report them."""

    type: str
    kind: str = OTHER
    relation: str | None = None
    alias: str | None = None
    index: str | None = None
    est_rows: float | None = None
    actual_rows: float | None = None
    loops: float | None = None
    cost: float | None = None
    time_ms: float | None = None
    condition: str | None = None
    rows_removed: float | None = None
    flags: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)
    children: list[PlanNode] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "kind": self.kind,
            "relation": self.relation,
            "alias": self.alias,
            "index": self.index,
            "est_rows": _num(self.est_rows),
            "actual_rows": _num(self.actual_rows),
            "loops": _num(self.loops),
            "cost": _num(self.cost),
            "time_ms": _num(self.time_ms),
            "condition": self.condition,
            "rows_removed": _num(self.rows_removed),
            "flags": list(self.flags),
            "extra": {str(k): str(v) for k, v in self.extra.items()},
            "children": [c.to_json() for c in self.children],
        }


def _num(value: Any) -> float | int | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if f != f or f in (float("inf"), float("-inf")):
        return None
    return int(f) if f.is_integer() else round(f, 4)


def walk(node: dict[str, Any], depth: int = 0, parents: tuple[dict[str, Any], ...] = ()) -> Any:
    """Yield ``(node, depth, parents)`` for a stored (JSON) plan tree, depth first."""
    yield node, depth, parents
    for child in node.get("children") or ():
        yield from walk(child, depth + 1, (*parents, node))


def number_nodes(root: dict[str, Any]) -> dict[str, Any]:
    """Give every node of a stored tree a stable ``id`` ("0", "0.1", ...) for findings."""

    def _number(node: dict[str, Any], ident: str) -> None:
        node["id"] = ident
        for i, child in enumerate(node.get("children") or ()):
            _number(child, f"{ident}.{i}")

    _number(root, "0")
    return root


# --- PostgreSQL -----------------------------------------------------------------------

_PG_KIND = {
    "Seq Scan": FULL_SCAN,
    "Parallel Seq Scan": FULL_SCAN,
    "Index Scan": INDEX_SCAN,
    "Index Only Scan": INDEX_SCAN,
    "Bitmap Index Scan": INDEX_SCAN,
    "Bitmap Heap Scan": INDEX_SCAN,
    "Sort": SORT,
    "Incremental Sort": SORT,
    "HashAggregate": TEMP,
    "Materialize": TEMP,
    "Nested Loop": JOIN,
    "Hash Join": JOIN,
    "Merge Join": JOIN,
}
_PG_CONDITIONS = ("Filter", "Index Cond", "Recheck Cond", "Join Filter", "Hash Cond", "Merge Cond")
_PG_EXTRA = (
    "Sort Key",
    "Sort Method",
    "Sort Space Used",
    "Sort Space Type",
    "Strategy",
    "Group Key",
    "Join Type",
    "Parent Relationship",
    "Peak Memory Usage",
    "Disk Usage",
    "HashAgg Batches",
    "Rows Removed by Index Recheck",
    "Rows Removed by Join Filter",
    "Heap Fetches",
    "Workers Planned",
    "Startup Cost",
    "Shared Hit Blocks",
    "Shared Read Blocks",
    "Temp Written Blocks",
)


def parse_postgresql(raw: Any) -> PlanNode:
    """``EXPLAIN (FORMAT JSON)`` output: psycopg 3 gives parsed JSON, psycopg2 may give text."""
    data = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    if isinstance(data, list):
        data = data[0]
    if isinstance(data, list):  # a row tuple holding the document
        data = data[0]
    if isinstance(data, str):
        data = json.loads(data)[0]
    node = _pg_node(data["Plan"])
    for key in ("Planning Time", "Execution Time"):
        if key in data:
            node.extra[key] = f"{data[key]:.3f} ms"
    return node


def _pg_node(plan: dict[str, Any]) -> PlanNode:
    ntype = plan.get("Node Type", "?")
    if ntype == "Aggregate" and plan.get("Strategy") == "Hashed":
        ntype = "HashAggregate"
    node = PlanNode(
        type=ntype,
        kind=_PG_KIND.get(ntype, OTHER),
        relation=plan.get("Relation Name"),
        alias=plan.get("Alias"),
        index=plan.get("Index Name"),
        est_rows=plan.get("Plan Rows"),
        actual_rows=plan.get("Actual Rows"),
        loops=plan.get("Actual Loops"),
        cost=plan.get("Total Cost"),
        time_ms=plan.get("Actual Total Time"),
        rows_removed=plan.get("Rows Removed by Filter"),
    )
    if node.kind == INDEX_SCAN and ntype.startswith("Index") and not plan.get("Index Cond"):
        # No index condition: the whole index is walked (for its order), like a table scan.
        node.kind = FULL_SCAN
        node.flags.append("full_index_scan")
    conds = [f"{k}: {plan[k]}" for k in _PG_CONDITIONS if plan.get(k)]
    node.condition = "; ".join(conds) or None
    for key in _PG_EXTRA:
        if key in plan:
            value = plan[key]
            node.extra[key] = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    method = str(plan.get("Sort Method", ""))
    if "external" in method or plan.get("Sort Space Type") == "Disk":
        node.flags.append("spills_to_disk")
    if plan.get("HashAgg Batches", 1) and plan.get("HashAgg Batches", 1) > 1:
        node.flags.append("spills_to_disk")
    node.children = [_pg_node(p) for p in plan.get("Plans") or ()]
    return node


# --- MariaDB / MySQL ---------------------------------------------------------------------

_MY_FULL = {"ALL": "full table scan", "index": "full index scan"}
_MY_WRAPPERS = {
    "filesort": ("Filesort", SORT),
    "temporary_table": ("Temporary table", TEMP),
    "read_sorted_file": ("Read sorted file", OTHER),
    "ordering_operation": ("Ordering", OTHER),
    "grouping_operation": ("Grouping", OTHER),
    "duplicates_removal": ("Duplicates removal", OTHER),
    "materialized": ("Materialized", TEMP),
    "subqueries": ("Subqueries", OTHER),
    "union_result": ("Union result", TEMP),
}


def parse_mysql(raw: Any) -> PlanNode:
    """``EXPLAIN FORMAT=JSON`` / MariaDB ``ANALYZE FORMAT=JSON``: one JSON document (text)."""
    data = raw
    for _ in range(3):  # Django's MariaDB explain double-encodes: decode until a dict
        if isinstance(data, (bytes, bytearray)):
            data = data.decode()
        if isinstance(data, str):
            data = _loads_mysql(data)
        else:
            break
    if not isinstance(data, dict):
        raise ValueError("not a JSON plan")
    block = data.get("query_block", data)
    root = _my_block(block, "Query block")
    if "query_optimization" in data:
        root.extra["optimization time"] = f"{data['query_optimization'].get('r_total_time_ms')}"
    return root


def _loads_mysql(text: str) -> Any:
    """``json.loads``; when that fails, again on :func:`repair_mysql_json` of the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(repair_mysql_json(text), strict=False)


def repair_mysql_json(text: str) -> str:
    """MariaDB's JSON plans print SQL string constants as SQL, not as JSON: ``'O\\'Brien'``
    (``\\'`` is no JSON escape), ``'dq"x'`` (an unescaped ``"`` ends the JSON string) and raw
    tabs. Inside JSON strings, track the SQL literals: there ``"`` is escaped and ``\\'``
    becomes ``'``. (Raw control characters are left to ``json.loads(strict=False)``.)"""
    out: list[str] = []
    in_json = in_sql = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if not in_json:
            in_json = c == '"'
            out.append(c)
        elif c == "\\":
            nxt = text[i + 1 : i + 2]
            out.append("'" if nxt == "'" else c + nxt)
            i += 2
            continue
        elif in_sql:
            in_sql = c != "'"
            out.append('\\"' if c == '"' else c)
        else:
            in_json = c != '"'
            in_sql = c == "'"
            out.append(c)
        i += 1
    return "".join(out)


def _my_block(block: dict[str, Any], label: str) -> PlanNode:
    node = PlanNode(type=label, kind=OTHER)
    if "select_id" in block:
        node.extra["select_id"] = str(block["select_id"])
    cost = block.get("cost")
    if cost is None and isinstance(block.get("cost_info"), dict):
        cost = block["cost_info"].get("query_cost")
    node.cost = _num(cost)
    node.time_ms = _num(block.get("r_total_time_ms"))
    node.children = _my_children(block)
    return node


def _my_children(block: dict[str, Any]) -> list[PlanNode]:
    out: list[PlanNode] = []
    for key, value in block.items():
        if key == "table" and isinstance(value, dict):
            out.append(_my_table(value))
        elif key == "nested_loop" and isinstance(value, list):
            items = [c for item in value if isinstance(item, dict) for c in _my_children(item)]
            if len(items) > 1:
                join = PlanNode(type="Nested loop", kind=JOIN, children=items)
                out.append(join)
            else:
                out.extend(items)
        elif key in _MY_WRAPPERS and isinstance(value, dict):
            label, kind = _MY_WRAPPERS[key]
            child = PlanNode(type=label, kind=kind)
            if value.get("sort_key"):
                child.condition = f"Sort key: {value['sort_key']}"
            if value.get("using_filesort"):
                child.flags.append("using_filesort")
                child.kind = SORT
            if value.get("using_temporary_table"):
                child.flags.append("using_temporary_table")
                child.kind = TEMP
            if key == "filesort":
                child.flags.append("using_filesort")
            if key == "temporary_table":
                child.flags.append("using_temporary_table")
            child.actual_rows = _num(value.get("r_output_rows"))
            child.children = _my_children(value)
            out.append(child)
        elif key in ("query_block", "subquery", "union_result") and isinstance(value, dict):
            out.append(_my_block(value.get("query_block", value), "Subquery"))
        elif isinstance(value, list) and key in (
            "subqueries",
            "query_specifications",
            "attached_subqueries",
        ):
            for item in value:
                if isinstance(item, dict):
                    out.append(_my_block(item.get("query_block", item), "Subquery"))
    return out


def _my_table(t: dict[str, Any]) -> PlanNode:
    access = str(t.get("access_type", "?"))
    kind = FULL_SCAN if access in _MY_FULL else INDEX_SCAN if t.get("key") else OTHER
    label = _MY_FULL.get(access, f"{access} access")
    rows = t.get("rows", t.get("rows_examined_per_scan"))
    r_rows = t.get("r_rows")
    r_filtered = t.get("r_filtered")
    node = PlanNode(
        type=label,
        kind=kind,
        relation=t.get("table_name"),
        index=t.get("key"),
        est_rows=_num(rows),
        actual_rows=_num(r_rows),
        loops=_num(t.get("r_loops")),
        time_ms=_num(t.get("r_table_time_ms") or t.get("r_total_time_ms")),
        condition=t.get("attached_condition"),
    )
    node.extra["access_type"] = access
    if isinstance(t.get("cost_info"), dict):
        node.cost = _num(t["cost_info"].get("read_cost"))
    if t.get("filtered") is not None:
        node.extra["filtered %"] = str(t["filtered"])
    if r_filtered is not None and r_rows is not None:
        # Same meaning as PostgreSQL: actual rows are the rows kept, per loop.
        node.extra["rows read per loop (r_rows)"] = str(r_rows)
        node.extra["r_filtered %"] = str(r_filtered)
        with contextlib.suppress(TypeError, ValueError):
            kept = float(r_rows) * float(r_filtered) / 100.0
            node.actual_rows = _num(kept)
            node.rows_removed = _num(float(r_rows) - kept)
    for flag in ("using_index", "using_where", "using_join_buffer"):
        if t.get(flag):
            node.flags.append(flag)
    if t.get("using_join_buffer") or "block-nl-join" in t:
        node.flags.append("join_buffer")
    nested = t.get("block-nl-join")
    if isinstance(nested, dict):
        node.children.append(_my_table(nested.get("table", nested)))
    node.children.extend(c for c in _my_children({k: v for k, v in t.items() if k in _MY_WRAPPERS}))
    return node


# --- SQLite --------------------------------------------------------------------------

_SQLITE_SCAN = re.compile(r"^SCAN (?:TABLE )?(?P<table>\S+)(?: AS (?P<alias>\S+))?(?P<rest>.*)$")
_SQLITE_SEARCH = re.compile(
    r"^SEARCH (?:TABLE )?(?P<table>\S+)(?: AS (?P<alias>\S+))?(?P<rest>.*)$"
)
_SQLITE_INDEX = re.compile(
    r"USING (?:COVERING |INTEGER PRIMARY KEY|AUTOMATIC )*(?:INDEX )?"
    r"(?P<index>\S+)?"
)


def parse_sqlite(rows: list[Any]) -> PlanNode:
    """``EXPLAIN QUERY PLAN`` rows ``(id, parent, notused, detail)`` into a tree."""
    root = PlanNode(type="QUERY PLAN", kind=OTHER)
    by_id: dict[int, PlanNode] = {0: root}
    for row in rows:
        ident, parent, detail = int(row[0]), int(row[1]), str(row[3])
        node = _sqlite_node(detail)
        by_id.get(parent, root).children.append(node)
        by_id[ident] = node
    return root


def _sqlite_node(detail: str) -> PlanNode:
    scan = _SQLITE_SCAN.match(detail)
    if scan:
        rest = scan["rest"]
        index = _SQLITE_INDEX.search(rest)
        if "USING" in rest:
            # A scan in index order is still a scan of every row, but of the index.
            idx = index["index"] if index else None
            kind = FULL_SCAN if "COVERING" not in rest else INDEX_SCAN
            return PlanNode(
                type=detail,
                kind=kind,
                relation=scan["table"],
                alias=scan["alias"],
                index=idx,
                flags=["index_order"] if kind == FULL_SCAN else [],
            )
        return PlanNode(type=detail, kind=FULL_SCAN, relation=scan["table"], alias=scan["alias"])
    search = _SQLITE_SEARCH.match(detail)
    if search:
        rest = search["rest"]
        index = _SQLITE_INDEX.search(rest)
        name = index["index"] if index and index["index"] else None
        if "INTEGER PRIMARY KEY" in rest:
            name = "rowid"
        cond = re.search(r"\((.*)\)\s*$", rest)
        return PlanNode(
            type=detail,
            kind=INDEX_SCAN,
            relation=search["table"],
            alias=search["alias"],
            index=name,
            condition=cond.group(1) if cond else None,
        )
    if detail.startswith("USE TEMP B-TREE"):
        node = PlanNode(type=detail, kind=SORT if "ORDER BY" in detail else TEMP)
        node.flags.append("temp_btree")
        if detail.startswith("USE TEMP B-TREE FOR RIGHT PART"):
            node.flags.append("partial")
        return node
    return PlanNode(type=detail, kind=OTHER)


# --- anything else -------------------------------------------------------------------------


def parse_text(rows: list[Any]) -> PlanNode:
    """Another backend: its EXPLAIN rows as text lines, one node each."""
    root = PlanNode(type="EXPLAIN", kind=OTHER)
    for row in rows:
        text = " | ".join(str(c) for c in row) if isinstance(row, (list, tuple)) else str(row)
        root.children.append(PlanNode(type=text, kind=OTHER))
    return root
