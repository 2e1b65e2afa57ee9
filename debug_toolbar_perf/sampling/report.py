"""What the sampling panel, the terminal and the budgets show: read from the stored record.

Everything here reads the *stored* record only (the toolbar renders from JSON later):
hot functions and lines, the project/library split, our own hooks' share, whether the
profile is too thin, and the headline. :func:`report` gathers them once for a record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .calltree import (
    FN_FILE,
    FN_NAME,
    FN_PROJECT,
    HOT_LIMIT,
    NODE_FN,
    NODE_TOTAL,
    SamplingRecord,
    _w,
)

# --- analysis of the stored record ------------------------------------------------------

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _label(fn: list[Any]) -> str:
    return str(fn[FN_NAME])


def hot_functions(
    record: SamplingRecord, by: str = "self", limit: int = 15, package_dir: str = _PACKAGE_DIR
) -> list[dict]:
    """The hottest functions by ``self`` or ``total`` samples, with shares of the scope.

    This package's hooks are left out, and so are the samples of what they call for
    themselves (``realpath`` of a first-seen file, a stack walk): the panel shows them once,
    as the toolbar's own overhead (:func:`own_hooks`), never as the user's hot spot.
    """
    total = float(record.get("samples") or 0)
    functions = record.get("functions") or []
    owned = _ownership(record, package_dir)
    rows = []
    for fi, self_w, total_w in record.get("hot") or []:
        if not 0 <= fi < len(functions) or fi in owned.ours:
            continue
        self_w = _w(self_w - owned.by_function.get(fi, 0.0))
        name, filename, first, project = functions[fi]
        rows.append(
            {
                "name": name,
                "file": filename,
                "line": first,
                "project": bool(project),
                "self": self_w,
                "total": total_w,
                "self_pct": 100.0 * self_w / total if total else 0.0,
                "total_pct": 100.0 * total_w / total if total else 0.0,
            }
        )
    key = "self" if by == "self" else "total"
    rows.sort(key=lambda r: (-r[key], r["name"]))
    return [r for r in rows if r[key] > 0][:limit]


def hot_lines(
    record: SamplingRecord, limit: int = 10, package_dir: str = _PACKAGE_DIR
) -> list[dict[str, Any]]:
    """The hottest lines, without this package's hooks (a function partly run for a hook
    keeps the user's share of its lines' samples)."""
    total = float(record.get("samples") or 0)
    functions = record.get("functions") or []
    owned = _ownership(record, package_dir)
    out = []
    for fi, line, weight in record.get("lines") or []:
        if fi in owned.ours:
            continue
        if fi in owned.by_function and owned.self_of.get(fi):
            weight = _w(weight * (1.0 - owned.by_function[fi] / owned.self_of[fi]))
        if weight > 0 and 0 <= fi < len(functions):
            name, filename, _first, project = functions[fi]
            out.append(
                {
                    "name": name,
                    "file": filename,
                    "line": line,
                    "project": bool(project),
                    "self": weight,
                    "pct": 100.0 * weight / total if total else 0.0,
                }
            )
    out.sort(key=lambda r: -r["self"])
    return out[:limit]


def project_split(record: SamplingRecord) -> dict[str, float]:
    """Self samples in project code vs library code (Django, third-party, stdlib)."""
    functions = record.get("functions") or []
    project = library = 0.0
    for _parent, fi, _total, self_w in record.get("nodes") or []:
        if fi < 0 or not self_w:
            continue
        if functions[fi][FN_PROJECT]:
            project += self_w
        else:
            library += self_w
    total = project + library
    return {
        "project": project,
        "library": library,
        "project_pct": 100.0 * project / total if total else 0.0,
        "library_pct": 100.0 * library / total if total else 0.0,
    }


def own_hooks(record: SamplingRecord, package_dir: str = _PACKAGE_DIR) -> dict[str, Any]:
    """Samples inside this package's own hooks that run in the view's thread.

    With other panels of this package on, their per-instance, per-query and per-line hooks
    run inside the view and are sampled with it: their cost is real, but not the user's
    code's, and the panel must say how much of the profile it is. A sample counts when its
    innermost frame is in our package or in something our hook called (``traceback``,
    ``psutil``); not when it is in the work a hook forwards to (the query that Explain's
    execute wrapper runs, the receivers that the instances hook passes ``post_init`` on to).
    """
    owned = _ownership(record, package_dir)
    nodes = record.get("nodes") or []
    samples = float(record.get("samples") or 0) or float(nodes[0][NODE_TOTAL] if nodes else 0)
    return {
        "weight": _w(owned.weight),
        "pct": 100.0 * owned.weight / samples if samples else 0.0,
        "panels": [
            {"panel": name, "pct": 100.0 * w / samples if samples else 0.0}
            for name, w in sorted(owned.by_panel.items(), key=lambda kv: -kv[1])
        ],
    }


@dataclass(frozen=True)
class _Owned:
    """Which self samples of a record are this package's hooks' (see :func:`own_hooks`)."""

    ours: frozenset[int]  # functions in this package
    by_function: dict[int, float]  # self samples owned by a hook, per function
    self_of: dict[int, float]  # all self samples, per function
    by_panel: dict[str, float]
    weight: float


_last_owned: list[tuple[Any, str, _Owned]] = []


def _ownership(record: SamplingRecord, package_dir: str = _PACKAGE_DIR) -> _Owned:
    """Computed once per record (the headline, hot functions and lines all ask)."""
    if _last_owned and _last_owned[0][0] is record and _last_owned[0][1] == package_dir:
        return _last_owned[0][2]
    functions = record.get("functions") or []
    nodes = record.get("nodes") or []
    owner_of: list[str | None] = [
        _hook_owner(str(f[FN_FILE])[len(package_dir) :])
        if f[FN_FILE] and str(f[FN_FILE]).startswith(package_dir)
        else None
        for f in functions
    ]
    forwarders = [
        bool(owner_of[i]) and str(f[FN_NAME]).rsplit(".", 1)[-1] in _FORWARDERS
        for i, f in enumerate(functions)
    ]
    owner: list[str | None] = [None] * len(nodes)
    weight = 0.0
    by_panel: dict[str, float] = {}
    by_function: dict[int, float] = {}
    self_of: dict[int, float] = {}
    for i, (parent, fi, _total, self_w) in enumerate(nodes):
        if fi >= 0 and owner_of[fi]:
            owner[i] = owner_of[fi]
        elif parent >= 0 and owner[parent] and not forwarders[int(nodes[parent][NODE_FN])]:
            owner[i] = owner[parent]
        if fi < 0 or not self_w:
            continue
        self_of[fi] = self_of.get(fi, 0.0) + self_w
        name = owner[i]
        if name:
            weight += self_w
            by_panel[name] = by_panel.get(name, 0.0) + self_w
            by_function[fi] = by_function.get(fi, 0.0) + self_w
    made = _Owned(
        frozenset(i for i, o in enumerate(owner_of) if o), by_function, self_of, by_panel, weight
    )
    _last_owned[:] = [(record, package_dir, made)]
    return made


#: Hooks of ours that pass the user's work on (a query, other post_init receivers): what
#: they call is the user's cost, not ours.
_FORWARDERS = frozenset({"_dispatch", "_send", "_send_through"})

_HOOK_OWNERS = (
    ("instances", "Model instances"),
    ("line_memory", "Line memory"),
    ("explain", "Explain"),
    ("sampling", "Sampling profiler"),
)


def _hook_owner(relative: str) -> str:
    """The panel a file of this package belongs to, by its module name."""
    for part, title in _HOOK_OWNERS:
        if part in relative:
            return title
    return "debug-toolbar-perf"


def top_project_function(record: SamplingRecord) -> dict[str, Any] | None:
    """The project function with the most self samples (the view itself if nothing else)."""
    for row in hot_functions(record, "self", limit=HOT_LIMIT * 2):
        if row["project"]:
            return row
    return None


def headline(record: SamplingRecord) -> str:
    """One line for the toolbar's sidebar."""
    samples = record.get("samples") or 0
    if record.get("not_sampled"):
        return "not sampled"
    if not samples:
        return "no samples"
    top = top_project_function(record)
    if top is None:
        rows = hot_functions(record, "self", limit=1)
        top = rows[0] if rows else None
    if top is None:
        return f"{_count(samples)} samples"
    return f"{top['name'].rsplit('.', 1)[-1]} {top['self_pct']:.0f}% · {_count(samples)} samples"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def thinness(record: SamplingRecord, min_samples: int) -> dict[str, Any] | None:
    """None if the profile has enough samples; else what is wrong and how to get more."""
    samples = float(record.get("samples") or 0)
    if samples >= min_samples or record.get("not_sampled"):
        return None
    interval = float(record.get("interval_ms") or 1.0)
    rate = float(record.get("rate_hz") or 0.0)
    tips = []
    if record.get("engine") == "thread" and not record.get("switch_ms"):
        tips.append(
            "set SAMPLING.SWITCH_INTERVAL_MS (None now: the thread sampler gets the GIL from "
            "running code only every 5 ms)"
        )
    if interval > 0.25:
        tips.append(f"lower SAMPLING.INTERVAL_MS (now {interval:g} ms)")
    if record.get("mode") == "cpu":
        tips.append("use MODE 'wall' (CPU time signals are capped by the kernel tick)")
    if record.get("outside"):
        tips.append("set SCOPE to 'middleware' to include time outside the view")
    tips.append("repeat the work in the view (e.g. a larger input) so it runs longer")
    if samples == 0 and record.get("away"):
        message = (
            f"No samples of this request's view: at each of the {record['away']:,.0f} ticks "
            "it was not running (awaiting, or other requests' code ran)."
        )
    elif samples == 0 and record.get("outside"):
        message = (
            f"No samples in the view's scope: all {record['outside']:,.0f} samples of this "
            "request were taken outside the view and the rendering of its response "
            "(middleware, or code the view's scope does not cover)."
        )
    elif samples == 0:
        message = (
            "No samples were taken in scope: the view finished before the first tick "
            f"(every {interval:g} ms)."
        )
    else:
        message = (
            f"Only {samples:,.0f} samples (fewer than {min_samples}): shares below about "
            f"{100.0 / max(samples, 1) * 3:.0f}% are noise."
        )
    return {"message": message, "tips": tips, "zero": samples == 0, "rate_hz": rate}


def request_overhead_ms(overhead: dict[str, float]) -> float:
    """What the profiler cost the request itself, from the record's ``overhead_ms``.

    "stop" already contains vmprof's "disable"; "sampler_cpu" is the sampler thread's
    CPU, mostly spent waiting for the GIL on another core: its cost to the request is
    "sampler_hold" (the GIL held while reading stacks).
    """
    return sum(
        float(v)
        for k, v in overhead.items()
        if k != "sampler_cpu" and not (k == "disable" and "stop" in overhead)
    )


@dataclass(frozen=True)
class SamplingReport:
    """One record's findings, shared by the panel, the terminal report and the budgets."""

    headline: str
    thin: dict[str, Any] | None
    hot_self: list[dict[str, Any]]
    hot_total: list[dict[str, Any]]
    hot_lines: list[dict[str, Any]]
    split: dict[str, float]
    own_hooks: dict[str, Any]
    overhead_ms: float


def report(record: SamplingRecord, min_samples: int) -> SamplingReport:
    """The findings of a stored sampling record (``min_samples``: SAMPLING.MIN_SAMPLES)."""
    return SamplingReport(
        headline=headline(record),
        thin=thinness(record, min_samples),
        hot_self=hot_functions(record, "self"),
        hot_total=hot_functions(record, "total"),
        hot_lines=hot_lines(record),
        split=project_split(record),
        own_hooks=own_hooks(record),
        overhead_ms=request_overhead_ms(record.get("overhead_ms") or {}),
    )
