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
        upper = sql.upper()
        for verb in ("INSERT", "UPDATE", "DELETE"):
            if re.search(rf"\)\s*{verb}\b", upper):
                return verb.lower()
        return "select"
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
