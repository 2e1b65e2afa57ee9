"""From a stopped session to the JSON-native record the toolbar stores."""

from __future__ import annotations

import inspect
import sys
from types import CodeType
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from .session import LineMemorySession

# -- the record ------------------------------------------------------------------------------


Source = tuple[int, list[str] | None, str | None]

#: id(code) -> (code, its source): the code is held so that its id is not reused.
_SOURCES: dict[int, tuple[CodeType, Source]] = {}
_SOURCES_MAX = 512


def source_of(code: CodeType) -> Source:
    """(first line, source lines or None, why not) for a code object.

    Read once per code object and process: ``inspect.getsourcelines`` stats the file and
    tokenizes the function on every call (180 us for a small view, on every request). A
    running code object's source does not change; an edited file is a new process (the
    autoreloader) or, without it, still runs the code read here.
    """
    hit = _SOURCES.get(id(code))
    if hit is None or hit[0] is not code:
        if len(_SOURCES) >= _SOURCES_MAX:
            _SOURCES.clear()
        hit = _SOURCES[id(code)] = (code, _read_source(code))
    first, lines, why = hit[1]
    return first, (list(lines) if lines is not None else None), why  # a copy per record


def _read_source(code: CodeType) -> Source:
    try:
        lines, start = inspect.getsourcelines(code)
    except (OSError, TypeError) as exc:
        return (
            code.co_firstlineno,
            None,
            (
                f"The source of {code.co_name} in {code.co_filename} cannot be read ({exc}); "
                "line numbers are shown without their text."
            ),
        )
    return max(start, 1), [line.rstrip("\n") for line in lines], None


#: Columns of a stored line row (``LineMemoryRecord["line_slots"]`` names them too).
LINE, INC, OCC, MEM_AFTER, SHARED, NSHARED = range(6)


class TracedFunction(TypedDict):
    label: str
    why: str  # "view" | "settings" | "decorator" | "memory_profiler @profile" | "followed"
    depth: int
    name: str
    file: str
    first_line: int
    source: list[str] | None
    source_error: str | None
    calls: int
    lines: list[list[int]]  # rows of the columns above


class LineMemoryRecord(TypedDict, total=False):
    """What the line-memory panel stores per request (``Stats["record"]``)."""

    asgi: bool  # set by the panel
    backend: str
    backend_label: str
    backend_meaning: str
    backend_how: str
    engine: str
    python: str
    problem: str | None
    start_bytes: int
    end_bytes: int
    peak_bytes: int
    peak_exact: bool
    events: int
    max_events: int
    capped: bool
    capped_calls: int
    cap_mode: str
    suspensions: int
    suspensions_shared: int
    shared_intervals: int
    gc_bytes: int
    gc_runs: int
    quiet_overlaps: int
    other_threads: dict[str, int]
    lines_bytes: int
    lines_shared_bytes: int
    own_threads: list[str]
    follow_depth: int
    wall_ms: float
    functions: list[TracedFunction]
    not_run: list[str]
    notes: list[str]
    memory_profiler: bool
    line_slots: list[str]


def build_record(session: LineMemorySession) -> LineMemoryRecord:
    """JSON-native record: per function, per executed line, bytes and counts."""
    source = session.source
    functions: list[TracedFunction] = []
    for code, (label, why) in session.targets.items():
        lines = session.lines.get(code)
        if not lines:
            continue
        first, text, error = source_of(code)
        functions.append(
            {
                "label": label,
                "why": why,
                "depth": session.depths.get(code, 0),
                "name": code.co_name,
                "file": code.co_filename,
                "first_line": first,
                "source": text,
                "source_error": error,
                "calls": session.calls.get(code, 0),
                "lines": [[lineno, *rec] for lineno, rec in sorted(lines.items())],
            }
        )
    not_run = [
        label
        for code, (label, why) in session.targets.items()
        if code not in session.lines and why != "followed"
    ]
    return {
        "backend": session.backend,
        "backend_label": source.label if source else "",
        "backend_meaning": source.meaning if source else "",
        "backend_how": getattr(source, "how", ""),
        "engine": session.engine,
        "python": sys.version.split()[0],
        "problem": session.problem,
        "start_bytes": session.start_mem,
        "end_bytes": session.end_mem,
        "peak_bytes": session.peak,
        "peak_exact": session.peak_exact,
        "events": session.events,
        "max_events": session.max_events,
        "capped": session.capped,
        "capped_calls": session.capped_calls,
        "cap_mode": session.cap_mode,
        "suspensions": session.suspensions,
        "suspensions_shared": session.suspensions_shared,
        "shared_intervals": session.shared_intervals,
        "gc_bytes": session.gc_bytes,
        "quiet_overlaps": session.quiet_overlaps,
        "other_threads": dict(session.other_threads),
        "lines_bytes": session.lines_bytes,
        "lines_shared_bytes": session.lines_shared_bytes,
        "gc_runs": session.gc_runs,
        "own_threads": session.own_threads,
        "follow_depth": session.follow_depth,
        "wall_ms": round(session.wall_ns / 1e6, 3),
        "functions": functions,
        "not_run": not_run,
        "notes": list(session.notes),
        "memory_profiler": session.memory_profiler,
        "line_slots": ["line", "inc", "occ", "mem_after", "shared", "nshared"],
    }
