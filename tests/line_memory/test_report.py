"""analysis/lines.py on stored records: memory_profiler's table, heaviest lines, negative
increments, the cap row, unreadable source, subtitle and text export."""

from __future__ import annotations

import json
from typing import Any

import pytest

from debug_toolbar_perf.line_memory.report import analyse, subtitle, text_report

MIB = 1 << 20


def record(**extra: Any) -> dict[str, Any]:
    base = 100 * MIB
    rec = {
        "backend": "rss",
        "start_bytes": base,
        "end_bytes": base + 10 * MIB,
        "peak_bytes": base + 56 * MIB,
        "capped": False,
        "problem": None,
        "functions": [
            {
                "label": "shop.views.memory",
                "why": "view",
                "depth": 0,
                "name": "memory",
                "file": "/x/views.py",
                "first_line": 10,
                "source": [
                    "def memory(request):",
                    "    big = [0] * 6_000_000",
                    "    small = list(range(10))",
                    "    del big",
                    "    return small",
                ],
                "source_error": None,
                "calls": 1,
                # [line, inc, occ, mem_after, shared, nshared]
                "lines": [
                    [10, 0, 1, base, 0, 0],
                    [11, 46 * MIB, 1, base + 46 * MIB, 0, 0],
                    [12, 10 * MIB, 1, base + 56 * MIB, 0, 0],
                    [13, -46 * MIB, 1, base + 10 * MIB, 0, 0],
                    [14, 0, 1, base + 10 * MIB, 3 * MIB, 1],
                ],
            }
        ],
    }
    rec.update(extra)
    return json.loads(json.dumps(rec))  # what the store gives back


def test_rows_follow_memory_profilers_table() -> None:
    ctx = analyse(record())
    rows = ctx["functions"][0]["rows"]
    assert [r["lineno"] for r in rows] == [10, 11, 12, 13, 14]
    big = rows[1]
    assert big["inc"] == pytest.approx(46.0) and big["occ"] == 1
    assert big["mem"] == pytest.approx(146.0) and big["since"] == pytest.approx(46.0)
    assert big["hot"] and not big["negative"]
    freed = rows[3]
    assert freed["negative"] and not freed["hot"] and freed["inc"] == pytest.approx(-46.0)
    assert rows[4]["shared"] == pytest.approx(3.0) and rows[4]["nshared"] == 1
    assert ctx["net_mib"] == pytest.approx(10.0)
    assert ctx["peak_over_start_mib"] == pytest.approx(56.0)
    assert ctx["shared_mib"] == pytest.approx(3.0)
    # Records stored before the session summed its lines: the depth-0 functions' rows.
    assert ctx["lines_mib"] == pytest.approx(10.0)
    assert ctx["outside_mib"] == pytest.approx(10.0 - 10.0 - 3.0)


def test_totals_come_from_the_sessions_sums_when_stored() -> None:
    ctx = analyse(record(lines_bytes=7 * MIB, lines_shared_bytes=MIB, gc_bytes=-MIB))
    assert (ctx["lines_mib"], ctx["shared_mib"], ctx["gc_mib"]) == (7.0, 1.0, -1.0)
    assert ctx["outside_mib"] == pytest.approx(10.0 - 7.0 - 1.0 + 1.0)


def test_heaviest_lines_first_and_small_lines_not_hot() -> None:
    ctx = analyse(record())
    assert [h["lineno"] for h in ctx["heaviest"]] == [11, 12, 14]
    assert ctx["heaviest"][0]["text"] == "big = [0] * 6_000_000"
    # Line 14 is listed for what changed while other threads ran, flagged, not as Increment.
    flagged = ctx["heaviest"][2]
    assert flagged["flagged"] and flagged["inc"] == 0 and flagged["shared"] == pytest.approx(3)
    assert not ctx["heaviest"][0]["flagged"]
    # 10 MiB is under a quarter of 46 MiB: listed but not highlighted.
    assert not ctx["functions"][0]["rows"][2]["hot"]


def test_subtitle_names_the_heaviest_line() -> None:
    assert subtitle(record()) == "L11 +46.0 MiB"
    assert subtitle(record(capped=True)) == "L11 +46.0 MiB (capped)"
    assert subtitle(record(functions=[])) == "no traced code ran"
    assert subtitle(record(problem="all tool ids taken")) == "not measured"
    # Heaviest line measured only while other threads ran: the figure gets a question mark.
    rec = record()
    rec["functions"][0]["lines"][1][1:6] = [0, 1, 146 * MIB, 46 * MIB, 1]
    assert subtitle(rec) == "L11 +46.0 MiB?"


def test_unreadable_source_still_lists_measured_lines() -> None:
    rec = record()
    rec["functions"][0]["source"] = None
    rec["functions"][0]["source_error"] = "cannot be read"
    rows = analyse(rec)["functions"][0]["rows"]
    assert [r["lineno"] for r in rows] == [10, 11, 12, 13, 14]
    assert all(r["text"] is None for r in rows)
    assert "(source not available)" in text_report(rec)


def test_cap_row_is_separate() -> None:
    rec = record(capped=True)
    rec["functions"][0]["lines"].insert(0, [0, 20 * MIB, 3, 130 * MIB, 0, 0])
    func = analyse(rec)["functions"][0]
    assert func["cap_row"]["inc"] == pytest.approx(20.0) and func["cap_row"]["calls"] == 3
    assert 0 not in [r["lineno"] for r in func["rows"]]


def test_text_report_uses_memory_profilers_layout() -> None:
    text = text_report(record())
    assert "Line #    Mem usage    Increment  Occurrences   Line Contents" in text
    assert "    11    146.0 MiB     46.0 MiB           1       big = [0] * 6_000_000" in text
    assert "-46.0 MiB" in text


def test_asgi_on_settrace_pythons_says_why_nothing_was_seen() -> None:
    """3.10/3.11 under ASGI: an empty table is explained, not shown as "nothing ran"."""
    from debug_toolbar_perf.line_memory.report import asgi_settrace_limit

    rec = record(functions=[], not_run=["shop.views.report"], asgi=True, python="3.11.7")
    assert asgi_settrace_limit(rec)
    assert analyse(rec)["asgi_settrace_limit"]
    assert not asgi_settrace_limit({**rec, "python": "3.12.1"})  # sys.monitoring sees all
    assert not asgi_settrace_limit({**rec, "asgi": False})
    assert not asgi_settrace_limit({**rec, "not_run": []})  # nothing was to be traced
