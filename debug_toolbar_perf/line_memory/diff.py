"""What changed line by line since the baseline: Δ memory increment and Δ runs per line.

How often a line ran is exact; its memory increment is measured (RSS moves by whole pages and
the allocator reuses freed memory, so an unchanged line can read +40 MiB once and 0 the next
time). A line's memory change counts only past ``MIN_MIB`` and ``SHARE`` of the larger side;
the peak is shown but decides nothing (it moves with the garbage collector's timing).
"""

from __future__ import annotations

from typing import Any

from ..baseline import Comparison, signed_delta
from .record import INC, LINE, OCC

MIB = 1 << 20
MIN_MIB = 1.0
SHARE = 0.5
ROWS = 20


Key = tuple[str, str, int]


def _lines(record: dict[str, Any]) -> dict[Key, tuple[float, int, str, int]]:
    """Lines by function and source text (the n-th line with that text), so that an edit above
    a line, which moves its number, does not make it a different line; by number where the
    source cannot be read. -> (MiB, runs, text, line number)."""
    out: dict[Key, tuple[float, int, str, int]] = {}
    for func in record.get("functions") or []:
        source = func.get("source") or []
        first = int(func.get("first_line") or 0)
        label = str(func.get("label") or func.get("name"))
        seen: dict[str, int] = {}
        for row in sorted(func.get("lines") or [], key=lambda r: int(r[LINE])):
            line = int(row[LINE])
            text = source[line - first].strip() if 0 <= line - first < len(source) else ""
            name = text or f"line {line}"
            seen[name] = seen.get(name, 0) + 1
            key = (label, name, seen[name])
            inc, occ, _, _ = out.get(key, (0.0, 0, text, line))
            out[key] = (inc + row[INC] / MIB, occ + int(row[OCC]), text, line)
    return out


def memory_changed(before: float, after: float) -> bool:
    change = abs(after - before)
    return change >= MIN_MIB and change >= SHARE * max(abs(before), abs(after))


def diff(record: dict[str, Any], base: dict[str, Any]) -> Comparison:
    """The change from ``base`` (the baseline's record) to ``record``."""
    now, before = _lines(record), _lines(base)
    changes = []
    for key in set(now) | set(before):
        inc_a, occ_a, text_a, line_a = before.get(key, (0.0, 0, "", 0))
        inc_b, occ_b, text_b, line_b = now.get(key, (0.0, 0, "", 0))
        real = memory_changed(inc_a, inc_b) or occ_a != occ_b
        if real or abs(inc_b - inc_a) >= 0.05:
            changes.append(
                (
                    real,
                    abs(inc_b - inc_a),
                    (key[0], line_b or line_a),
                    inc_a,
                    inc_b,
                    occ_a,
                    occ_b,
                    text_b or text_a,
                )
            )
    changes.sort(key=lambda c: (not c[0], -c[1], c[2]))
    rows, notes = [], []
    for real, _, (label, line), inc_a, inc_b, occ_a, occ_b, text in changes[:ROWS]:
        name = label.rsplit(".", 1)[-1]
        rows.append(
            [
                f"{name} L{line}: {text[:80]}",
                f"{inc_a:+.1f} MiB \u00b7 {occ_a:,}\u00d7",
                f"{inc_b:+.1f} MiB \u00b7 {occ_b:,}\u00d7",
                f"{signed_delta(inc_b - inc_a, 1)} MiB",
                "" if real else "within noise",
            ]
        )
        if real:
            runs = f", ran {occ_a:,} \u2192 {occ_b:,} times" if occ_a != occ_b else ""
            notes.append(f"{name} L{line}: {inc_a:+.1f} \u2192 {inc_b:+.1f} MiB{runs}")
    peak_a = (int(base.get("peak_bytes") or 0) - int(base.get("start_bytes") or 0)) / MIB
    peak_b = (int(record.get("peak_bytes") or 0) - int(record.get("start_bytes") or 0)) / MIB
    headline = notes[0] if notes else f"peak +{peak_b:.1f} MiB, was +{peak_a:.1f} MiB"
    return Comparison(
        headline=headline,
        significant=bool(notes),
        notes=notes,
        columns=["Line", "Before", "After", "\u0394", ""],
        rows=[
            [
                "peak above start",
                f"{peak_a:+.1f} MiB",
                f"{peak_b:+.1f} MiB",
                f"{signed_delta(peak_b - peak_a, 1)} MiB",
                "",
            ],
            *rows,
        ],
        noise=f"How often a line ran is exact; a line's memory change counts past {MIN_MIB:g} MiB "
        f"and {SHARE:.0%} of the larger side (the allocator reuses freed memory); the peak "
        "depends on when the garbage collector ran, so it is shown but decides nothing.",
    )
