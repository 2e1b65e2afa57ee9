"""What changed in the request's SQL since the baseline: statements and shapes Δ, and which
findings were fixed or are new ("N+1 on shop.Category fixed: -12 queries").

Statement and shape counts are exact, so any change in them is real; query time is measured
and noisy, so it is shown but never makes a change significant by itself.
"""

from __future__ import annotations

import re
from typing import Any

from ..baseline import Comparison, signed_delta
from ..text import count, plural
from .findings import analyse
from .indexes import _model_for_table

_FROM = re.compile(r'\bFROM\s+(?:"([^"]+)"|`([^`]+)`|(\w+))', re.IGNORECASE)


def _subject(shape: dict[str, Any]) -> str:
    """The model a shape reads (``shop.Category``), else its table, else its id."""
    m = _FROM.search(shape.get("sql") or "")
    if not m:
        return f"shape {shape.get('id', '?')}"
    table = m[1] or m[2] or m[3]
    model = _model_for_table(table)
    return str(model._meta.label) if model is not None else table


def _key(shape: dict[str, Any]) -> tuple[str, str]:
    return (str(shape.get("alias", "")), str(shape.get("fingerprint", "")))


def diff(record: dict[str, Any], base: dict[str, Any], cfg: dict[str, Any]) -> Comparison:
    """The change from ``base`` (the baseline's record) to ``record`` (``cfg``: EXPLAIN)."""
    now = {_key(s): s for s in analyse(record, cfg)}
    before = {_key(s): s for s in analyse(base, cfg)}
    notes: list[str] = []
    for key, shape in before.items():
        after = now.get(key)
        codes_after = {f["code"] for f in (after or {}).get("findings") or []}
        for finding in shape["findings"]:
            if finding["code"] in codes_after:
                continue
            name = "N+1" if finding["code"] == "n_plus_one" else finding["title"]
            gone = int(shape.get("count") or 0) - int((after or {}).get("count") or 0)
            tail = f": {signed_delta(-gone)} {plural(gone, 'query')}" if gone else ""
            notes.append(f"{name} on {_subject(shape)} fixed{tail}")
    for key, shape in now.items():
        codes_before = {f["code"] for f in (before.get(key) or {}).get("findings") or []}
        for finding in shape["findings"]:
            if finding["code"] not in codes_before:
                name = "N+1" if finding["code"] == "n_plus_one" else finding["title"]
                notes.append(f"new: {name} on {_subject(shape)}")
    rows: list[list[str]] = []
    for key in sorted(set(now) | set(before), key=lambda k: k[1]):
        a = int((before.get(key) or {}).get("count") or 0)
        b = int((now.get(key) or {}).get("count") or 0)
        if a != b:
            sql = str((now.get(key) or before.get(key) or {}).get("fingerprint", ""))
            rows.append([sql[:160], f"{a:,}", f"{b:,}", signed_delta(b - a)])
    st_a, st_b = int(base.get("statements") or 0), int(record.get("statements") or 0)
    sh_a, sh_b = len(before), len(now)
    ms_a, ms_b = float(base.get("query_ms") or 0.0), float(record.get("query_ms") or 0.0)
    significant = st_a != st_b or set(now) != set(before) or bool(notes) or bool(rows)
    if st_a != st_b:
        headline = f"{signed_delta(st_b - st_a)} {plural(abs(st_b - st_a), 'query')}"
        if sh_a != sh_b:
            headline += f", {signed_delta(sh_b - sh_a)} {plural(abs(sh_b - sh_a), 'shape')}"
    elif notes:
        headline = notes[0]
    elif set(now) != set(before):
        headline = "same query count, other shapes"
    else:
        headline = f"{count(st_b, 'query')} in {count(sh_b, 'shape')}, as before"
    summary = [
        ["statements", f"{st_a:,}", f"{st_b:,}", signed_delta(st_b - st_a)],
        ["shapes", f"{sh_a:,}", f"{sh_b:,}", signed_delta(sh_b - sh_a)],
        ["query time (ms)", f"{ms_a:,.1f}", f"{ms_b:,.1f}", signed_delta(ms_b - ms_a, 1)],
    ]
    return Comparison(
        headline=headline,
        significant=significant,
        notes=notes,
        columns=["Shape / total", "Before", "After", "\u0394"],
        rows=summary + rows,
        noise="Statement and shape counts are exact; query time is measured (noisy) and "
        "never makes a change significant by itself.",
    )
