"""From a stored line-memory record to what the panel, the terminal and exports show.

Works on the JSON record alone (the toolbar renders later from its store): per
traced function, memory_profiler's table (Line #, Mem usage, Increment,
Occurrences, Line Contents) plus the request-level figures and the heaviest lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MIB = 1 << 20
#: Lines whose increment is at least this share of the heaviest are highlighted.
HOT_SHARE = 0.25
#: Increments below this (MiB) are noise for highlighting purposes.
MIN_HOT_MIB = 0.5
TOP_LINES = 10


def mib(value: float) -> float:
    return value / MIB


def _rows(func: dict[str, Any], start: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Table rows for one function's source range, and the after-the-cap row."""
    stats = {row[0]: row for row in func["lines"]}
    source = func.get("source")
    first = int(func["first_line"])
    numbers: Iterable[int]
    if source is not None:
        numbers = range(first, first + len(source))
    else:
        low, high = (min(stats), max(stats)) if stats else (first, first)
        numbers = range(max(low, 1), high + 1)
    rows = []
    for lineno in numbers:
        text = source[lineno - first] if source is not None else None
        row: dict[str, Any] = {"lineno": lineno, "text": text, "ran": lineno in stats}
        if lineno in stats:
            _, inc, occ, peak, shared, nshared = stats[lineno][:6]
            row.update(
                inc=mib(inc),
                occ=occ,
                mem=mib(peak),
                since=mib(peak - start),
                shared=mib(shared),
                nshared=nshared,
            )
        rows.append(row)
    cap_row = None
    if 0 in stats:
        _, inc, occ, peak, shared, nshared = stats[0][:6]
        cap_row = {
            "inc": mib(inc),
            "calls": occ,
            "mem": mib(peak),
            "shared": mib(shared),
            "nshared": nshared,
        }
    return rows, cap_row


def analyse(record: dict[str, Any]) -> dict[str, Any]:
    """Template context: functions with rows, heaviest lines, summary figures."""
    start = int(record.get("start_bytes") or 0)
    functions = []
    heavy: list[dict[str, Any]] = []
    for func in record.get("functions") or []:
        rows, cap_row = _rows(func, start)
        functions.append({**func, "rows": rows, "cap_row": cap_row})
        for row in rows:
            # Ranked by everything measured on the line; the part measured while other
            # threads ran (it may be theirs) is shown apart and flagged.
            if row.get("ran") and row["inc"] + row["shared"] > 0:
                heavy.append(
                    {
                        "function": func["label"],
                        "file": func["file"],
                        "lineno": row["lineno"],
                        "text": (row["text"] or "").strip(),
                        "inc": row["inc"],
                        "shared": row["shared"],
                        "total": row["inc"] + row["shared"],
                        "flagged": bool(row["nshared"]),
                        "occ": row["occ"],
                    }
                )
    heavy.sort(key=lambda h: h["total"], reverse=True)
    top = max((h["inc"] for h in heavy), default=0.0)
    threshold = max(MIN_HOT_MIB, top * HOT_SHARE)
    for func in functions:
        for row in func["rows"]:
            row["hot"] = bool(row.get("ran") and row["inc"] >= threshold)
            row["negative"] = bool(row.get("ran") and row["inc"] <= -0.05)
    lines_mib, shared_mib = _traced_totals(record)
    net_mib = mib(int(record.get("end_bytes") or 0) - start)
    gc_mib = mib(int(record.get("gc_bytes") or 0))
    return {
        "asgi_settrace_limit": asgi_settrace_limit(record),
        "functions": functions,
        "heaviest": [h for h in heavy[:TOP_LINES] if h["total"] >= 0.05],
        "start_mib": mib(start),
        "end_mib": mib(int(record.get("end_bytes") or 0)),
        "peak_mib": mib(int(record.get("peak_bytes") or 0)),
        "net_mib": net_mib,
        "peak_over_start_mib": mib(int(record.get("peak_bytes") or 0) - start),
        # One source of numbers: the header's "Traced lines" is the table's Increment column
        # summed (outermost calls), and the rest of the net change is said to be elsewhere.
        "lines_mib": lines_mib,
        "shared_mib": shared_mib,
        "gc_mib": gc_mib,
        "outside_mib": net_mib - lines_mib - shared_mib - gc_mib,
    }


def _traced_totals(record: dict[str, Any]) -> tuple[float, float]:
    """(Increment, Others ran) summed over the lines, in MiB, each change counted once.

    The session sums the outermost traced calls' lines (a traced caller's line already holds
    what its traced callees changed); records stored before it did: depth-0 functions'.
    """
    if "lines_bytes" in record:
        return mib(int(record["lines_bytes"])), mib(int(record.get("lines_shared_bytes") or 0))
    rows = [r for f in record.get("functions") or [] if not f.get("depth") for r in f["lines"]]
    return mib(sum(r[1] for r in rows)), mib(sum(r[4] for r in rows))


def asgi_settrace_limit(record: dict[str, Any]) -> bool:
    """Nothing traced was seen under ASGI on 3.10/3.11, where settrace reaches two threads only.

    Said plainly in the panel instead of an empty table that reads "none of the traced code
    ran": on 3.12+ sys.monitoring fires in every thread, so there it does mean that.
    """
    if not record.get("asgi") or record.get("functions") or not record.get("not_run"):
        return False
    if record.get("problem"):
        return False
    try:
        version = tuple(int(x) for x in str(record.get("python", "")).split(".")[:2])
    except ValueError:
        return False
    return version < (3, 12)


@dataclass(frozen=True)
class LineMemoryReport:
    """One record's table and headline, shared by the panel, the terminal and exports."""

    table: dict[str, Any]  # :func:`analyse`
    subtitle: str


def report(record: dict[str, Any]) -> LineMemoryReport:
    table = analyse(record)
    return LineMemoryReport(table, _subtitle(record, table))


def subtitle(record: dict[str, Any]) -> str:
    return report(record).subtitle


def _subtitle(record: dict[str, Any], table: dict[str, Any]) -> str:
    """Heaviest line and its increment, e.g. ``L42 +45.8 MiB``."""
    if record.get("problem"):
        return "not measured"
    heaviest = table["heaviest"]
    capped = " (capped)" if record.get("capped") else ""
    if not heaviest:
        if not record.get("functions"):
            return "no traced code ran"
        return f"no line allocated{capped}"
    h = heaviest[0]
    if h["flagged"] and h["shared"] >= h["inc"]:  # mostly measured while other threads ran
        return f"L{h['lineno']} +{h['total']:.1f} MiB?{capped}"
    return f"L{h['lineno']} +{h['inc']:.1f} MiB{capped}"


def text_report(record: dict[str, Any]) -> str:
    """memory_profiler's ``show_results`` layout, from the stored record."""
    template = "{0:>6} {1:>12} {2:>12}  {3:>10}   {4:<}"
    out = []
    for func in analyse(record)["functions"]:
        header = template.format("Line #", "Mem usage", "Increment", "Occurrences", "Line Contents")
        out += [f"Filename: {func['file']}", "", header, "=" * len(header)]
        for row in func["rows"]:
            text = row["text"] if row["text"] is not None else "(source not available)"
            if row["ran"]:
                out.append(
                    template.format(
                        row["lineno"],
                        f"{row['mem']:.1f} MiB",
                        f"{row['inc']:.1f} MiB",
                        row["occ"],
                        text,
                    )
                )
            else:
                out.append(template.format(row["lineno"], "", "", "", text))
        out += ["", ""]
    return "\n".join(out)
