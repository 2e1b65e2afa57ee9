"""Statement shapes: literals and parameters become ``?``, so repeats group together."""

from __future__ import annotations

import hashlib
import re

# --- fingerprints ---------------------------------------------------------------------

_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w\"`.$])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w\"`])")
_PLACEHOLDER = re.compile(r"%s|%\(\w+\)s|\?")
_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.IGNORECASE)
_ROW = r"\(\s*\?(?:\s*,\s*\?)*\s*\)"
_VALUES = re.compile(rf"\bVALUES\s*{_ROW}(?:\s*,\s*{_ROW})*", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
#: A DML verb opening a statement: after ``(`` (a CTE's body) or ``)`` (the main one).
_DML = re.compile(r"[()]\s*(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)
_CACHE_MAX = 4096
#: SQL text -> (kind, shape id, normalised SQL), for SELECT/INSERT/UPDATE/DELETE only
#: (savepoint statements carry unique names: caching them would only churn the cache).
_SQL_INFO: dict[str, tuple[str, str, str]] = {}


def fingerprint(sql: str) -> tuple[str, str]:
    """``(shape_id, normalised_sql)``: literals and parameters become ``?``, lists ``(...)``."""
    text = _STRING.sub("?", sql)
    text = _NUMBER.sub("?", text)
    text = _PLACEHOLDER.sub("?", text)
    text = _LIST.sub("IN (...)", text)
    text = _VALUES.sub("VALUES (...)", text)
    text = _SPACE.sub(" ", text).strip()
    return (hashlib.sha1(text.encode()).hexdigest()[:12], text)


def statement_kind(sql: str) -> str:
    """``select``, ``insert``, ``update``, ``delete`` or ``other`` (savepoints, DDL...)."""
    head = sql.lstrip(" \t\r\n(").split(None, 1)
    word = head[0].upper() if head else ""
    if word == "SELECT":
        return "select"
    if word in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
        return "insert" if word == "REPLACE" else word.lower()
    if word == "WITH":
        # A data-modifying CTE (``WITH x AS (UPDATE ... RETURNING *) SELECT ...``) writes
        # whatever the main statement is: the first DML verb, in the CTEs or after them.
        found = _DML.search(_STRING.sub("''", sql))
        return found.group(1).lower().replace("merge", "update") if found else "select"
    return "other"


_OTHER = ("other", "", "")


def sql_info(sql: str) -> tuple[str, str, str]:
    """``(kind, shape_id, normalised_sql)``, computed once per distinct SQL text."""
    info = _SQL_INFO.get(sql)
    if info is not None:
        return info
    kind = statement_kind(sql)
    if kind == "other":
        return _OTHER
    info = (kind, *fingerprint(sql))
    if len(_SQL_INFO) >= _CACHE_MAX:
        _SQL_INFO.clear()
    _SQL_INFO[sql] = info
    return info
