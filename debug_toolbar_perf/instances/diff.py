"""What changed in the model instances since the baseline request: per model, per site,
and which findings were fixed or are new ("N+1 on shop.Category fixed: -11 queries").

Counts are exact (every instance goes through one hook), so any change in a count is a real
change: there is no noise to rule out, unlike the sampled time of the sampling panel.
"""

from __future__ import annotations

from typing import Any

from ..baseline import Comparison, arrow, signed_delta
from ..text import count, plural
from .report import findings

_FINDING_NAMES = {"n_plus_one": "N+1", "evaluation": "whole-queryset evaluation", "count": "count"}


def _short(frame: dict[str, Any] | None) -> str:
    if not frame:
        return "?"
    parts = str(frame.get("file", "?")).replace("\\", "/").split("/")
    return f"{'/'.join(parts[-2:])}:{frame.get('line', '?')}"


def _sites(model: dict[str, Any]) -> dict[tuple[str, str, str], tuple[str, int]]:
    """Sites by what they are (file, function, code line), not where: an edit above a site
    moves its line number, and the site is still the same one. -> (``file:line``, count)."""
    out: dict[tuple[str, str, str], tuple[str, int]] = {}
    for site in model.get("sites") or []:
        where = site.get("where") or {}
        code = str(where.get("code") or "") or f"line {where.get('line', '?')}"
        key = (str(where.get("file", "?")), str(where.get("function", "?")), code)
        shown, count = out.get(key, (_short(where), 0))
        out[key] = (shown, count + int(site["count"]))
    return out


def _finding_keys(record: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["kind"], f["model"]): f for f in findings(record)}


def _queries(record: dict[str, Any]) -> int | None:
    sql = record.get("sql") or {}
    return int(sql.get("total") or 0) if sql.get("present") else None


def diff(record: dict[str, Any], base: dict[str, Any]) -> Comparison:
    """The change from ``base`` (the baseline's record) to ``record``."""
    now = {m["label"]: m for m in record.get("models") or []}
    before = {m["label"]: m for m in base.get("models") or []}
    rows: list[list[str]] = []
    notes: list[str] = []
    counts_changed = False
    for label in sorted(set(now) | set(before)):
        a = int(before[label]["count"]) if label in before else 0
        b = int(now[label]["count"]) if label in now else 0
        sites_a = _sites(before.get(label) or {})
        sites_b = _sites(now.get(label) or {})
        if a != b:
            counts_changed = True
            rows.append([label, f"{a:,}", f"{b:,}", signed_delta(b - a)])
        gone = [sites_a[s][0] for s in sites_a if s not in sites_b]
        new = [sites_b[s][0] for s in sites_b if s not in sites_a]
        for site in sorted(set(sites_a) | set(sites_b)):
            shown, sa = sites_a.get(site, ("", 0))
            shown_now, sb = sites_b.get(site, ("", 0))
            if sa != sb:
                where = shown_now or shown
                rows.append([f"{label} @ {where}", f"{sa:,}", f"{sb:,}", signed_delta(sb - sa)])
        if a != b or gone or new:
            text = f"{label}: {arrow(a, b)}"
            if gone:
                text += f", site {', '.join(gone[:3])} gone"
            if new:
                text += f", new site {', '.join(new[:3])}"
            notes.append(text)
    q_before, q_now = _queries(base), _queries(record)
    queries_delta = (q_now - q_before) if q_now is not None and q_before is not None else None
    fixed_new: list[str] = []
    found_before, found_now = _finding_keys(base), _finding_keys(record)
    for key in found_before:
        if key not in found_now:
            tail = ""
            if key[0] == "n_plus_one":  # the queries the N+1 site issued, now gone
                sites = (before.get(key[1]) or {}).get("sites") or []
                issued = max((int(s.get("query_count") or 0) for s in sites), default=0)
                tail = f": {signed_delta(-issued)} queries" if issued else ""
            fixed_new.append(f"{_FINDING_NAMES.get(key[0], key[0])} on {key[1]} fixed{tail}")
    for key in found_now:
        if key not in found_before:
            fixed_new.append(f"new {_FINDING_NAMES.get(key[0], key[0])} on {key[1]}")
    total_a, total_b = int(base.get("total") or 0), int(record.get("total") or 0)
    if queries_delta:
        rows.append(
            ["SQL queries (SQL panel)", f"{q_before:,}", f"{q_now:,}", signed_delta(queries_delta)]
        )
    significant = counts_changed or bool(fixed_new) or bool(notes)
    if total_a != total_b:
        change = total_b - total_a
        headline = f"{signed_delta(change)} {plural(abs(change), 'instance')}"
    elif fixed_new:
        headline = fixed_new[0]
    elif notes:
        headline = "same counts, sites moved"
    else:
        headline = f"{count(total_b, 'instance')}, same models and sites"
    return Comparison(
        headline=headline,
        significant=significant,
        notes=fixed_new + notes,
        columns=["Model / site", "Before", "After", "\u0394"],
        rows=rows,
        noise="Counts are exact (one hook sees every instance): any change is real.",
    )
