"""The statement's columns and the index that would serve them (a suggestion, not a plan).

Pure text work on the SQL Django wrote: which columns a table is filtered on (and
whether by a constant), which it is ordered by, and the ``CREATE INDEX`` (and Django
``Meta.indexes`` line) for them. The columns are read from the statement itself (SQLite
plans name no columns); Django always qualifies columns (``"table"."column"``), which
makes that reliable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlparse

# --- the statement's columns --------------------------------------------------------------

_REF = r'(?:"(?P<t1>[^"]+)"|`(?P<t2>[^`]+)`)\.(?:"(?P<c1>[^"]+)"|`(?P<c2>[^`]+)`)'
_REF_RE = re.compile(_REF)
_CLAUSE_END = re.compile(
    r"\b(GROUP BY|ORDER BY|LIMIT|HAVING|OFFSET|FOR UPDATE|UNION|WINDOW)\b", re.IGNORECASE
)


@dataclass
class Predicate:
    column: str
    op: str  # "=", "range", "in", "bool", "not bool", "is null", "is not null", "other"
    constant: str | None = None  # the partial-index predicate, when it is a constant


@lru_cache(maxsize=1024)
def _clause(sql: str, keyword: str) -> tuple[str, int]:
    """The top-level clause after ``keyword`` (WHERE / ORDER BY), with its offset.

    Cached per statement text: a page sends the same shapes on every request, and parsing
    one with sqlparse costs about a millisecond (the sidebar's finding count needs it
    while the request is still open)."""
    try:
        statement = sqlparse.parse(sql)[0]
    except Exception:
        return ("", -1)
    offset = 0
    for token in statement.tokens:
        text = str(token)
        if keyword == "WHERE" and isinstance(token, sqlparse.sql.Where):
            body = text[5:]
            end = _CLAUSE_END.search(body)
            return (body[: end.start()] if end else body, offset + 5)
        if keyword == "ORDER BY" and token.normalized == "ORDER BY":
            rest = sql[offset + len(text) :]
            end = re.search(r"\b(LIMIT|OFFSET|FOR UPDATE|UNION)\b", rest, re.IGNORECASE)
            return (rest[: end.start()] if end else rest, offset + len(text))
        offset += len(text)
    return ("", -1)


def _param_index(sql: str, position: int) -> int:
    return sql[:position].count("%s")


def where_predicates(sql: str, table: str, params: Any = None) -> list[Predicate]:
    """Predicates on ``table``'s columns in the top-level WHERE clause."""
    where, offset = _clause(sql, "WHERE")
    if not where:
        return []
    preds: list[Predicate] = []
    for m in _REF_RE.finditer(where):
        if (m["t1"] or m["t2"]) != table:
            continue
        col = m["c1"] or m["c2"]
        before = where[: m.start()].rstrip()
        after = where[m.end() :].lstrip()
        up = after.upper()
        if up.startswith("IS NOT NULL"):
            preds.append(Predicate(col, "is not null", f"{col} IS NOT NULL"))
        elif up.startswith("IS NULL"):
            preds.append(Predicate(col, "is null", f"{col} IS NULL"))
        elif up.startswith("IN "):
            preds.append(Predicate(col, "in"))
        elif re.match(r"=\s*%s", after):
            pos = offset + m.end() + after.index("%s") + (len(where[m.end() :]) - len(after))
            value = _param_value(params, _param_index(sql, pos))
            if isinstance(value, bool):
                preds.append(Predicate(col, "=", col if value else f"NOT {col}"))
            else:
                preds.append(Predicate(col, "="))
        elif re.match(r"=\s*(true|false)\b", after, re.IGNORECASE):
            truth = after.split("=", 1)[1].strip().lower().startswith("true")
            preds.append(Predicate(col, "=", col if truth else f"NOT {col}"))
        elif re.match(r"(<=|>=|<|>|BETWEEN\b)", up):
            preds.append(Predicate(col, "range"))
        elif before.upper().endswith("NOT") and (not up or re.match(r"(AND|OR|\))", up)):
            preds.append(Predicate(col, "not bool", f"NOT {col}"))
        elif not up or re.match(r"(AND|OR|\))", up):
            preds.append(Predicate(col, "bool", col))
        else:
            preds.append(Predicate(col, "other"))
    return preds


def _param_value(params: Any, index: int) -> Any:
    if not isinstance(params, list) or index >= len(params):
        return None
    item = params[index]
    if isinstance(item, list) and len(item) == 2 and item[0] == "bool":
        return bool(item[1])
    return None


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _select_items(sql: str) -> list[str]:
    m = re.match(r"\s*SELECT\s+(?:DISTINCT\s+)?(.*?)\s+FROM\s", sql, re.IGNORECASE | re.DOTALL)
    return _split_top(m.group(1)) if m else []


def order_columns(sql: str, table: str) -> list[str]:
    """ORDER BY columns of ``table`` (positions and aliases resolved), ``"col DESC"`` if so."""
    clause, _ = _clause(sql, "ORDER BY")
    cols = []
    items = None
    for item in _split_top(clause):
        desc = bool(re.search(r"\bDESC\b", item, re.IGNORECASE))
        expr = re.sub(r"\s+(ASC|DESC)\b.*$", "", item, flags=re.IGNORECASE).strip()
        if items is None and (expr.isdigit() or not _REF_RE.search(expr)):
            items = _select_items(sql)
        if items and expr.isdigit() and 0 < int(expr) <= len(items):
            expr = items[int(expr) - 1]
        elif items and not _REF_RE.search(expr):
            alias = expr.strip('"`')
            expr = next(
                (i for i in items if re.search(rf"\bAS\s+[\"`]?{re.escape(alias)}[\"`]?$", i)),
                expr,
            )
        m = _REF_RE.search(expr)
        if m and (m["t1"] or m["t2"]) == table:
            col = m["c1"] or m["c2"]
            cols.append(f"{col} DESC" if desc else col)
    return cols


# --- index suggestions -------------------------------------------------------------------

_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")


def _q(name: str) -> str:
    return name if _PLAIN.match(name) else '"' + name.replace('"', '""') + '"'


def _dedupe(items: list[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item.split()[0] not in [s.split()[0] for s in seen]:
            seen.append(item)
    return seen


def suggest_index(
    sql: str, table: str, params: Any, partial_ok: bool, extra_order: bool = True
) -> tuple[str, str | None] | None:
    """``(CREATE INDEX ..., Django Meta.indexes spelling)`` for a scan of ``table``."""
    preds = where_predicates(sql, table, params)
    order = order_columns(sql, table) if extra_order else []
    # A partial index only for a bare boolean or NULL test: a planner matches the index's
    # WHERE to the query's by form, and SQLite never takes `WHERE "flag"` for a query's
    # `"flag" = True` (Django 6.1 writes that): an equality leads a full index instead.
    constants = [p for p in preds if p.constant and p.op != "="]
    eq = [p.column for p in preds if p.op in ("=", "in")]
    rng = [p.column for p in preds if p.op == "range"]
    if not preds and not order:
        return None
    name_cols: list[str]
    where = None
    # Equality, then sort, then range: an index read in order for each equality value, with
    # the range checked in it (a range column before the sort column breaks the order).
    if constants and partial_ok:
        cols = _dedupe(eq + order + rng) or ["id"]
        where = " AND ".join(_constant_sql(p) for p in constants)
        name_cols = [p.column for p in constants]
    else:
        cols = _dedupe([p.column for p in constants] + eq + order + rng)
        name_cols = [c.split()[0] for c in cols]
    if not cols:
        return None
    name = f"{table}_{'_'.join(name_cols)}_idx"[:63]
    sql_cols = ", ".join(_q(c.split()[0]) + (" DESC" if c.endswith(" DESC") else "") for c in cols)
    stmt = f"CREATE INDEX {_q(name)} ON {_q(table)} ({sql_cols})"
    if where:
        stmt += f" WHERE {where}"
    return stmt, _orm_index(table, cols, constants if where else [], name)


def _constant_sql(p: Predicate) -> str:
    if p.op == "is null":
        return f"{_q(p.column)} IS NULL"
    if p.op == "is not null":
        return f"{_q(p.column)} IS NOT NULL"
    if p.constant and p.constant.startswith("NOT "):
        return f"NOT {_q(p.column)}"
    return _q(p.column)


def _model_for_table(table: str) -> Any:
    try:
        from django.apps import apps

        for model in apps.get_models():
            if model._meta.db_table == table:
                return model
    except Exception:
        return None
    return None


def _field_name(model: Any, column: str) -> str:
    for f in model._meta.concrete_fields:
        if f.column == column:
            return f.name if not (f.primary_key and f.name == "id") else "id"
    return column


def _orm_index(table: str, cols: list[str], constants: list[Predicate], name: str) -> str | None:
    model = _model_for_table(table)
    if model is None:
        return None
    fields = []
    for c in cols:
        fname = _field_name(model, c.split()[0])
        fields.append(f'"-{fname}"' if c.endswith(" DESC") else f'"{fname}"')
    text = f"models.Index(fields=[{', '.join(fields)}]"
    if constants:
        conds = []
        for p in constants:
            fname = _field_name(model, p.column)
            if p.op == "is null":
                conds.append(f"Q({fname}__isnull=True)")
            elif p.op == "is not null":
                conds.append(f"Q({fname}__isnull=False)")
            else:
                conds.append(f"Q({fname}={not (p.constant or '').startswith('NOT ')})")
        text += f", condition={' & '.join(conds)}"
    return f'{model.__name__}.Meta.indexes: {text}, name="{name[:30]}")'


# --- LIKE with a leading wildcard ------------------------------------------------------------

_LIKE = re.compile(
    rf"(?P<upper>UPPER\(\s*)?{_REF}(?:::text)?\s*\)?\s+(?:I?LIKE)\s+(?:UPPER\()?\s*%s",
    re.IGNORECASE,
)


def leading_wildcards(sql: str, table: str, params: Any) -> list[tuple[str, bool]]:
    """``(column, upper)`` of each ``LIKE`` on ``table`` whose pattern starts with ``%``
    (``icontains`` / ``contains`` / ``endswith``): no btree index can serve it. ``upper``:
    Django wrote ``UPPER("t"."c"::text) LIKE UPPER(%s)`` (PostgreSQL's ``icontains``)."""
    where, offset = _clause(sql, "WHERE")
    out: list[tuple[str, bool]] = []
    for m in _LIKE.finditer(where):
        if (m["t1"] or m["t2"]) != table:
            continue
        value = _param_str(params, _param_index(sql, offset + m.end() - 2))
        if value is not None and value.startswith("%"):
            item = (m["c1"] or m["c2"], bool(m["upper"]))
            if item not in out:
                out.append(item)
    return out


def _param_str(params: Any, index: int) -> str | None:
    if not isinstance(params, list) or index >= len(params):
        return None
    item = params[index]
    if isinstance(item, list) and len(item) == 2 and item[0] == "str":
        return str(item[1])
    return item if isinstance(item, str) else None


def trigram_index(table: str, column: str, upper: bool) -> tuple[str, str | None]:
    """PostgreSQL's ``pg_trgm`` GIN index for a leading-wildcard LIKE on ``column``, on the
    very expression Django wrote (``UPPER(col::text)`` for ``icontains``)."""
    name = f"{table}_{column}_trgm_idx"[:63]
    expr = f"UPPER({_q(column)}::text)" if upper else _q(column)
    ddl = f"CREATE INDEX {_q(name)} ON {_q(table)} USING gin ({expr} gin_trgm_ops)"
    model = _model_for_table(table)
    orm = None
    if model is not None:
        field = _field_name(model, column)
        target = f'Upper("{field}")' if upper else f'"{field}"'
        orm = (
            f'{model.__name__}.Meta.indexes: GinIndex(OpClass({target}, name="gin_trgm_ops"), '
            f'name="{name[:30]}")  # needs the pg_trgm extension (TrigramExtension)'
        )
    return ddl, orm
