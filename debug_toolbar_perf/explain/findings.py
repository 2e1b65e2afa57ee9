"""Findings on stored plans, each pointing at its evidence (a node id), with a fix.

Pure functions of the stored record (plans, table sizes, counts) and the
thresholds of the ``EXPLAIN`` settings section, so the panel can render them
later from the toolbar's JSON store. Index suggestions come from :mod:`.indexes`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..admin_fix import list_select_related_fix
from ..scope import short_path
from .indexes import (
    _model_for_table,
    leading_wildcards,
    order_columns,
    suggest_index,
    trigram_index,
    where_predicates,
)
from .plans import FULL_SCAN, INDEX_SCAN, JOIN, SORT, TEMP, walk
from .verify import NOT_VERIFIED

HIGH = "high"
MEDIUM = "medium"


@dataclass
class Finding:
    code: str
    severity: str
    title: str
    detail: str
    node: str | None = None
    suggestion: str | None = None  # SQL
    orm: str | None = None  # the Django spelling of the fix
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- plan findings ------------------------------------------------------------------------


def _rows(size: Any) -> int | None:
    if isinstance(size, list) and size and isinstance(size[0], (int, float)):
        return int(size[0])
    return None


def plan_findings(
    shape: dict[str, Any],
    cfg: dict[str, Any],
    plan: dict[str, Any] | None = None,
    partial_ok: bool | None = None,
) -> list[dict[str, Any]]:
    """Findings on one shape's plan (or on ``plan``, e.g. an ANALYZE result)."""
    plan = plan if plan is not None else shape.get("plan")
    if not plan:
        return []
    vendor = shape.get("vendor")
    if partial_ok is None:
        partial_ok = vendor in ("postgresql", "sqlite")
    threshold = int(cfg["FULL_SCAN_ROWS"])
    loop_rows = int(cfg.get("NESTED_LOOP_ROWS", 1000))
    sizes = shape.get("table_rows") or {}
    sql = shape.get("sql") or ""
    params = shape.get("params")
    out: list[Finding] = []
    scanned: dict[str, int] = {}
    for node, _depth, parents in walk(plan):
        rel = node.get("relation")
        if node.get("kind") == FULL_SCAN and rel:
            size = _rows(sizes.get(rel))
            if size is not None:
                scanned[rel] = size
            cols = where_predicates(sql, rel, params)
            reads, how = rows_read(node, parents, plan, shape, size, bool(cols))
            if reads is None or reads <= threshold:
                continue
            likes = leading_wildcards(sql, rel, params)
            if likes and vendor == "postgresql":
                fix: tuple[str, str | None] | None = trigram_index(rel, *likes[0])
            elif likes:
                fix = None
            else:
                fix = suggest_index(sql, rel, params, partial_ok)
            fix, checked = checked_fix(shape, fix)
            if likes and fix is None and not checked:
                checked = (
                    " A LIKE whose pattern starts with % (icontains) cannot use a btree "
                    "index: no index helps here (PostgreSQL's pg_trgm can)."
                )
            what = "filter" if cols else "no usable index"
            whole = size is not None and reads >= size
            if not whole:
                read = f"About {reads:,} rows of {rel} are read ({what}; {how})"
            elif how == UNKNOWN_EARLY:
                read = f"Up to every row of {rel} is read ({what}; {how}); it has {size:,} rows"
            else:
                read = f"Every row of {rel} is read ({what}); the table has about {size:,} rows"
            out.append(
                Finding(
                    "full_scan",
                    HIGH,
                    f"Full scan of {rel} ({size:,} rows)"
                    if whole and size is not None
                    else f"Full scan of {rel}: about {reads:,} rows read",
                    read
                    + f", over the {threshold:,}-row threshold."
                    + (
                        " A partial index holds only the rows the constant filter keeps."
                        if fix and " WHERE " in fix[0]
                        else ""
                    )
                    + checked,
                    node.get("id"),
                    fix[0] if fix else None,
                    fix[1] if fix else None,
                    {
                        "rows": size if size is not None else reads,
                        "rows_read": reads,
                        "read_source": how,
                        "source": (sizes.get(rel) or [None, None, ""])[2],
                    },
                )
            )
    for node, _depth, parents in walk(plan):
        out.extend(_sort_finding(node, parents, plan, shape, scanned, threshold, partial_ok))
        out.extend(_loop_finding(node, parents, plan, scanned, loop_rows))
        out.extend(_removed_finding(node, shape, partial_ok))
    return [f.to_json() for f in out]


UNKNOWN_EARLY = "the LIMIT may stop the scan earlier; how early is not known"


def rows_read(
    node: dict[str, Any],
    parents: tuple[dict[str, Any], ...],
    plan: dict[str, Any],
    shape: dict[str, Any],
    size: int | None,
    filtered: bool,
) -> tuple[int | None, str]:
    """How many rows a full scan reads, and how that is known: a full scan matters for the
    rows it reads, not for the size of its table (``ORDER BY pk LIMIT 50`` scans a big table
    but stops after 50 rows). None when neither the plan nor the table size tells."""
    actual = node.get("actual_rows")
    if actual is not None:  # EXPLAIN ANALYZE: the rows kept plus those the filter removed
        loops = node.get("loops") or 1
        read = (float(actual) + float(node.get("rows_removed") or 0)) * float(loops)
        return int(read), "measured by ANALYZE"
    early = _stops_early(node, parents, size)
    if early is not None:
        return early, "the planner's estimate: the LIMIT stops the scan early"
    sql = shape.get("sql") or ""
    limit = final_limit(sql)
    if limit is not None and not _has_temp_sort(plan):
        if not filtered:  # read in order and stopped by the LIMIT
            return (
                limit if size is None else min(limit, size),
                "read in order; the LIMIT stops the scan",
            )
        matches = shape.get("limit_matches")
        if size is not None and matches:
            return _limited_read(limit, size, int(matches[0]), int(matches[1]))
        if size is not None:
            return size, UNKNOWN_EARLY
    if size is None:
        return None, "table size unknown"
    return size, "the whole table"


def _limited_read(limit: int, size: int, matches: int, cap: int) -> tuple[int, str]:
    """Rows a scan in order reads before ``limit`` of its ``matches`` (counted up to
    ``cap``) are found, matches spread evenly (the assumption a planner makes)."""
    if matches < limit:
        return size, f"only {matches:,} rows match, fewer than the LIMIT takes"
    read = min(size, -(-limit * size // matches))
    if matches >= cap:
        return read, (
            f"at least {matches:,} of {size:,} rows match, so the LIMIT of {limit:,} "
            f"stops the scan after about {read:,} rows or fewer"
        )
    return read, (
        f"{matches:,} of {size:,} rows match, so the LIMIT of {limit:,} stops the scan "
        f"after about {read:,} rows"
    )


_FINAL_LIMIT = re.compile(
    r"\bLIMIT\s+(?P<limit>\d+)(?:\s+OFFSET\s+(?P<offset>\d+))?\s*$", re.IGNORECASE
)


def final_limit(sql: str) -> int | None:
    """Rows the statement's own (last) LIMIT lets through, its OFFSET included."""
    m = _FINAL_LIMIT.search(sql)
    return int(m["limit"]) + int(m["offset"] or 0) if m else None


def without_limit(sql: str, cap: int) -> str | None:
    """``sql`` with its final LIMIT/OFFSET replaced by ``LIMIT cap``."""
    m = _FINAL_LIMIT.search(sql)
    return f"{sql[: m.start()]}LIMIT {int(cap)}" if m else None


def match_count_cap(
    shape: dict[str, Any], cfg: dict[str, Any], table_rows: int | None
) -> tuple[str, int] | None:
    """``(table, cap)`` when the shape's full scan is stopped by a LIMIT after a filter,
    whose plan does not say how many rows it reads (SQLite, MariaDB/MySQL, whose estimate
    assumes every row matches): counting the rows that match, up to ``cap``, tells
    whether it reads more than ``FULL_SCAN_ROWS``. None when no count is needed."""
    plan = shape.get("plan")
    sql = shape.get("sql") or ""
    limit = final_limit(sql)
    threshold = int(cfg["FULL_SCAN_ROWS"])
    if not plan or limit is None or table_rows is None or table_rows <= threshold:
        return None
    if shape.get("vendor") == "postgresql" or _has_temp_sort(plan):
        return None
    relations = {n["relation"] for n, _d, _p in walk(plan) if n.get("relation")}
    scans = [n for n, _d, _p in walk(plan) if n.get("kind") == FULL_SCAN and n.get("relation")]
    if len(relations) != 1 or not scans or scans[0].get("actual_rows") is not None:
        return None
    table = scans[0]["relation"]
    if not where_predicates(sql, table, shape.get("params")):
        return None
    # reads <= threshold  <=>  limit * size / matches <= threshold
    return table, max(limit, -(-limit * table_rows // threshold)) + 1


def checked_fix(
    shape: dict[str, Any], fix: tuple[str, str | None] | None
) -> tuple[tuple[str, str | None] | None, str]:
    """The suggestion as the planner judged it (``shape["index_checks"]``, made while the
    request ran, see :mod:`.verify`), and a sentence saying so. A suggestion the planner
    would not use, or that an existing index already provides, is dropped."""
    checks = shape.get("index_checks")
    if fix is None or checks is None:
        return fix, ""
    check = checks.get(fix[0])
    if not check or check.get("used") is None:
        why = (check or {}).get("why") or (check or {}).get("error")  # e.g. DDL refused
        return fix, f" ({NOT_VERIFIED}{': ' + why if why else ''}.)"
    if check.get("duplicate_of"):
        return None, f" The index it needs exists already ({check['duplicate_of']})."
    if not check["used"]:
        return None, " No index suggested: the planner would not use the one that fits."
    before, after = check.get("cost_before"), check.get("cost_after")
    if before is not None and after is not None:
        change = f"cost {before:,.1f} → {after:,.1f}"
    else:
        change = f"plan {', '.join(check.get('plan_before') or [])} → "
        change += ", ".join(check.get("plan_after") or [])
    return fix, f" Verified: the planner uses it ({check['method']}; {change})."


def _stops_early(
    node: dict[str, Any], parents: tuple[dict[str, Any], ...], size: int | None
) -> int | None:
    """PostgreSQL: rows a scan under a LIMIT is expected to read (from the Limit's cost)."""
    if size is None or node.get("cost") is None:
        return None
    for parent in reversed(parents):
        if parent.get("type") == "Limit":
            limit_cost = parent.get("cost")
            startup = float((node.get("extra") or {}).get("Startup Cost", 0) or 0)
            total = float(node["cost"]) - startup
            if limit_cost is None or total <= 0:
                return None
            return int(size * min(1.0, max(0.0, (float(limit_cost) - startup) / total)))
        if parent.get("kind") != "other" or len(parent.get("children") or ()) > 1:
            return None  # a sort, join or aggregate consumes the whole scan
    return None


def _has_temp_sort(plan: dict[str, Any]) -> bool:
    for n, _d, _p in walk(plan):
        flags = set(n.get("flags") or ())
        if n.get("kind") in (SORT, TEMP) or flags & {"using_filesort", "temp_btree"}:
            return True
    return False


def _subtree_input(node: dict[str, Any], scanned: dict[str, int]) -> int | None:
    best = None
    for n, _d, _p in walk(node):
        rows = n.get("actual_rows") if n.get("actual_rows") is not None else n.get("est_rows")
        if n.get("relation") in scanned:  # a scan feeds at most the table's rows
            size = scanned[n["relation"]]
            rows = size if rows is None else min(rows, size)
        if rows is not None and n is not node:
            best = max(best or 0, int(rows))
    return best


def _sort_finding(
    node: dict[str, Any],
    parents: tuple[dict[str, Any], ...],
    plan: dict[str, Any],
    shape: dict[str, Any],
    scanned: dict[str, int],
    threshold: int,
    partial_ok: bool,
) -> list[Finding]:
    flags = node.get("flags") or []
    kind = node.get("kind")
    if kind not in (SORT, TEMP) and not {"using_filesort", "using_temporary_table"} & set(flags):
        return []
    if "partial" in flags:
        return []
    spills = "spills_to_disk" in flags
    if "temp_btree" in flags:  # SQLite: the sorted input is whatever the plan scans
        rows = max(scanned.values()) if scanned else None
    else:
        rows = _subtree_input(node, scanned)
    if not spills and (rows is None or rows <= threshold):
        return []
    label = node.get("type", "sort")
    tables = sorted({n["relation"] for n, _d, _p in walk(plan) if n.get("relation")})
    fix = None
    if len(tables) == 1:
        cols = order_columns(shape.get("sql") or "", tables[0])
        if cols:
            fix = suggest_index(
                shape.get("sql") or "", tables[0], shape.get("params"), partial_ok, True
            )
            if fix and not any(c.split()[0] in fix[0] for c in cols):
                fix = None
    fix, checked = checked_fix(shape, fix)
    detail = (
        f"{label}: about {rows:,} rows go through a temporary structure"
        if rows
        else f"{label} through a temporary structure"
    )
    if spills:
        detail += "; it spills to disk (work_mem / tmp_table_size too small for it)"
    detail += (
        ". An index in the ORDER BY / GROUP BY order lets the database read rows already sorted."
        if fix
        else "."
    ) + checked
    return [
        Finding(
            "temp_sort",
            HIGH if spills else MEDIUM,
            "Sort spills to disk" if spills else "Sort / aggregate through a temporary structure",
            detail,
            node.get("id"),
            fix[0] if fix else None,
            fix[1] if fix else None,
            {"rows": rows, "spills": spills},
        )
    ]


def _loop_finding(
    node: dict[str, Any],
    parents: tuple[dict[str, Any], ...],
    plan: dict[str, Any],
    scanned: dict[str, int],
    loop_rows: int,
) -> list[Finding]:
    children = node.get("children") or []
    if node.get("type") == "Nested Loop" and len(children) >= 2:  # PostgreSQL
        outer, inner = children[0], children[1]
        if outer.get("actual_rows") is not None:
            rows = (outer.get("actual_rows") or 0) * (outer.get("loops") or 1)
        else:
            if any(p.get("type") == "Limit" for p in parents):
                return []  # a LIMIT stops the loop early: the estimate overstates it
            rows = outer.get("est_rows") or 0
        if rows > loop_rows:
            return [
                Finding(
                    "nested_loop",
                    HIGH if inner.get("kind") == FULL_SCAN else MEDIUM,
                    f"Nested loop over {int(rows):,} outer rows",
                    f"The inner side ({inner.get('type')} "
                    f"{inner.get('relation') or ''}) runs once per outer row.",
                    node.get("id"),
                    evidence={"outer_rows": int(rows)},
                )
            ]
        return []
    if node.get("kind") != JOIN and node is not plan:
        return []
    # SQLite (root children in loop order) and MariaDB (Nested loop node): the outer table
    # drives the loop; an inner full scan repeats per outer row.
    tables = [c for c in children if c.get("relation")]
    if len(tables) < 2:
        return []
    outer = tables[0]
    rows = scanned.get(outer["relation"]) if outer.get("kind") == FULL_SCAN else None
    if rows is None:
        rows = outer.get("actual_rows") or outer.get("est_rows")
    for inner in tables[1:]:
        if inner.get("kind") == FULL_SCAN and rows and rows > loop_rows:
            return [
                Finding(
                    "nested_loop",
                    HIGH,
                    f"Nested loop over {int(rows):,} outer rows",
                    f"{inner['relation']} is scanned in full for each row of "
                    f"{outer['relation']}: add an index on the join column.",
                    inner.get("id"),
                    evidence={"outer_rows": int(rows)},
                )
            ]
    return []


def _removed_finding(
    node: dict[str, Any], shape: dict[str, Any], partial_ok: bool
) -> list[Finding]:
    removed = node.get("rows_removed")
    if removed is None or node.get("kind") not in (INDEX_SCAN, FULL_SCAN):
        return []
    loops = node.get("loops") or 1
    kept = (node.get("actual_rows") or 0) * loops
    removed_total = removed * loops
    if removed_total < 1000 or removed_total < 9 * kept:
        return []
    rel = node.get("relation")
    fix = (
        suggest_index(shape.get("sql") or "", rel, shape.get("params"), partial_ok) if rel else None
    )
    fix, checked = checked_fix(shape, fix)
    share = removed_total / (removed_total + kept) if removed_total + kept else 0
    return [
        Finding(
            "rows_removed",
            HIGH if node.get("kind") == INDEX_SCAN else MEDIUM,
            f"{share:.0%} of the rows read are discarded",
            f"{node.get('type')} on {rel} read {int(removed_total + kept):,} rows and "
            f"discarded {int(removed_total):,} by a filter the index does not cover." + checked,
            node.get("id"),
            fix[0] if fix else None,
            fix[1] if fix else None,
            {"removed": int(removed_total), "kept": int(kept)},
        )
    ]


# --- N+1 ----------------------------------------------------------------------------------


def n_plus_one(shape: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any] | None:
    """A SELECT shape repeated per parent row, with the likely ORM fix."""
    count = int(shape.get("count") or 0)
    if shape.get("kind") != "select" or count < int(cfg["REPEATED_QUERY_THRESHOLD"]):
        return None
    sql = shape.get("sql") or ""
    lines = shape.get("lines") or []
    line = next((ln for ln in lines if ln.get("project")), lines[0] if lines else None)
    fix, orm, field = _relation_fix(sql, (line or {}).get("code") or "")
    admin = list_select_related_fix(line, field) if field else None
    if admin:  # a ModelAdmin's list_display method: the admin's queryset, its own setting
        fix, orm = f"{fix.partition(': ')[0]}: {admin.text}.", admin.code
    where = f" at {short_path(line['file'])}:{line['line']}" if line else ""
    return Finding(
        "n_plus_one",
        HIGH,
        f"N+1: the same query ran {count} times",
        f"One query per parent row{where}. " + fix,
        None,
        None,
        orm,
        {"count": count, "line": line},
    ).to_json()


def _relation_fix(sql: str, source: str) -> tuple[str, str | None, str | None]:
    """(advice, ORM code, the foreign key select_related would follow, if that is the fix)."""
    table_m = re.search(r'\bFROM\s+(?:"([^"]+)"|`([^`]+)`)', sql, re.IGNORECASE)
    if not table_m:
        return ("Fetch the rows in one query (__in) instead of one per row.", None, None)
    table = table_m[1] or table_m[2]
    preds = where_predicates(sql, table)
    eq = [p.column for p in preds if p.op == "="]
    model = _model_for_table(table)
    if model is None or not eq:
        return ("Fetch the rows in one query (__in) instead of one per row.", None, None)
    col = eq[0]
    pk = model._meta.pk
    counting = bool(re.match(r"\s*SELECT\s+COUNT\(", sql, re.IGNORECASE))
    if pk is not None and col == pk.column:
        candidates = []
        from django.apps import apps

        for other in apps.get_models():
            for f in other._meta.concrete_fields:
                if f.is_relation and f.many_to_one and f.related_model is model:
                    candidates.append((other, f))
        ranked = sorted(candidates, key=lambda c: f".{c[1].name}" not in source)
        if ranked:
            other, f = ranked[0]
            orm = f'{other.__name__}.objects....select_related("{f.name}")'
            return (
                f"Each {other.__name__} loads its {f.name} ({model.__name__}) separately: "
                f'add .select_related("{f.name}") to the {other.__name__} queryset.',
                orm,
                f.name,
            )
        return (
            f"Each row loads one {model.__name__} by primary key: use select_related.",
            "select_related(...)",
            None,
        )
    for f in model._meta.concrete_fields:
        if f.is_relation and f.many_to_one and f.column == col:
            parent = f.related_model
            accessor = f.remote_field.get_accessor_name()
            orm = f'{parent.__name__}.objects....prefetch_related("{accessor}")'
            text = (
                f"Each {parent.__name__} queries its {accessor} separately: add "
                f'.prefetch_related("{accessor}") to the {parent.__name__} queryset'
            )
            if counting:
                text += (
                    f', or annotate the count once with .annotate(n_{accessor}=Count("{accessor}"))'
                )
            return (text + ".", orm, None)
    return ("Fetch the rows in one query (__in) instead of one per row.", None, None)


# --- whole record -------------------------------------------------------------------------


def analyse(record: dict[str, Any], cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Shapes sorted by impact, each with its findings (plan + N+1)."""
    out = []
    for shape in record.get("shapes") or []:
        findings = plan_findings(shape, cfg)
        n1 = n_plus_one(shape, cfg)
        if n1:
            findings.insert(0, n1)
        out.append(
            {
                **shape,
                "findings": findings,
                "finding_nodes": sorted({f["node"] for f in findings if f.get("node")}),
                "impact": shape.get("count", 0) * shape.get("total_ms", 0.0),
            }
        )
    out.sort(key=lambda s: (s["impact"], s.get("total_ms", 0)), reverse=True)
    return out
