"""Plain-text reports of the panels, for ``manage.py profile_request`` and CI logs.

One function per panel, each taking the panel's *stored* stats dict (what the toolbar keeps
in its JSON store) and returning text. The figures and findings come from each feature's
``report()`` (``sampling/report.py``, ``line_memory/report.py``, ``instances/report.py``,
``explain/report.py``), which the panels render in the browser too: the terminal never
recomputes them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from typing import Any

from ..budget import relpath
from ..text import count

WIDTH = 100
TOP = 10


def _head(title: str, subtitle: str) -> list[str]:
    text = f"{title} · {subtitle}" if subtitle else title
    return [f"== {text} " + "=" * max(3, WIDTH - len(text) - 4)]


def _wrap(text: str, indent: str = "  ") -> list[str]:
    rest = " " * (len(indent) + 2)
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=rest) or [indent]


def _short(text: str, limit: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _unavailable(title: str, stats: Mapping[str, Any]) -> list[str] | None:
    """The panel's problem or errors, as the panel shows them; None if it has a record."""
    problem = stats.get("problem")
    errors = stats.get("errors") or []
    out: list[str] = []
    if problem:
        out += _head(title, "not available")
        out += _wrap(f"This panel cannot measure here. {problem.get('message', '')}")
        if problem.get("fix"):
            out.append(f"  Fix: {problem['fix']}")
    for error in errors:
        if not out:
            out += _head(title, "error" if not stats.get("record") else "")
        out += _wrap(
            f"This panel failed (stage: {error.get('stage')}): "
            f"{error.get('type')}: {error.get('message')}"
        )
    if not stats.get("record"):
        if not out:
            out += _head(title, "")
            out.append("  Nothing was recorded for this request.")
        return out
    return out or None


# --- sampling ----------------------------------------------------------------------------


def sampling(stats: Mapping[str, Any], *, min_samples: int | None = None) -> str:
    """Hot functions (self and total) and the hottest lines of the sampling profile."""
    from ..conf import get_config
    from ..sampling.report import report

    title = "Sampling profiler"
    early = _unavailable(title, stats)
    if early is not None and not stats.get("record"):
        return "\n".join(early)
    record = stats["record"]
    if min_samples is None:
        min_samples = int(get_config()["SAMPLING"]["MIN_SAMPLES"])
    found = report(record, min_samples)
    out = _head(title, found.headline)
    out += early or []
    engine = record.get("engine") or "?"
    out.append(
        f"  {engine} engine, {record.get('mode')} time, every {record.get('interval_ms')} ms · "
        f"{record.get('duration_ms', 0):,.1f} ms profiled · {record.get('samples', 0):,.0f} "
        f"samples · scope: {record.get('root_label') or '?'}"
    )
    thin = found.thin
    if thin:
        out += _wrap(f"{thin['message']} To get more: {'; '.join(thin['tips'])}.", "  ! ")
    for note in record.get("notes") or []:
        out += _wrap(str(note), "  note: ")
    split = found.split
    if split["project"] or split["library"]:
        out.append(
            f"  self time: your code {split['project_pct']:.0f}% · "
            f"libraries {split['library_pct']:.0f}%"
        )
    rows = found.hot_self[:TOP]
    if rows:
        out.append("")
        out.append("  Hot functions (* = your code)")
        out.append("       self   total  function  (where)")
        for r in rows:
            mark = "*" if r["project"] else " "
            out.append(
                f"  {mark} {r['self_pct']:5.1f}%  {r['total_pct']:5.1f}%  {r['name']}  "
                f"({relpath(r['file'])}:{r['line']})"
            )
    lines = found.hot_lines[:5]
    if lines:
        out.append("")
        out.append("  Hottest lines")
        out.append("       self  where")
        for r in lines:
            mark = "*" if r["project"] else " "
            out.append(
                f"  {mark} {r['pct']:5.1f}%  {relpath(r['file'])}:{r['line']} in {r['name']}"
            )
    return "\n".join(out)


# --- line memory -------------------------------------------------------------------------


def line_memory(stats: Mapping[str, Any]) -> str:
    """The request's memory figures and its heaviest lines (memory_profiler's increments)."""
    from ..line_memory.report import report

    title = "Line memory"
    early = _unavailable(title, stats)
    if early is not None and not stats.get("record"):
        return "\n".join(early)
    record = stats["record"]
    found = report(record)
    out = _head(title, found.subtitle)
    out += early or []
    if record.get("problem"):
        out += _wrap(f"Not measured: {record['problem']}")
        return "\n".join(out)
    ctx = found.table
    traced = ", ".join(f["label"] for f in ctx["functions"]) or "(no traced code ran)"
    out.append(
        f"  backend {record.get('backend')} · start {ctx['start_mib']:.1f} MiB · peak "
        f"{ctx['peak_mib']:.1f} MiB (+{ctx['peak_over_start_mib']:.1f}) · end "
        f"{ctx['end_mib']:.1f} MiB (net {ctx['net_mib']:+.1f})"
    )
    # The net change, split as the panel's header splits it: the parts add up.
    parts = f"  traced lines {ctx['lines_mib']:+.1f} MiB (the increments summed)"
    if ctx["shared_mib"]:
        parts += f" · others ran {ctx['shared_mib']:+.1f} MiB"
    if ctx["gc_mib"]:
        parts += f" · garbage collections {ctx['gc_mib']:+.1f} MiB"
    out.append(f"{parts} · outside them {ctx['outside_mib']:+.1f} MiB")
    out += _wrap(f"traced: {traced}")
    if record.get("capped"):
        out += _wrap(
            "The line-event cap was reached: later lines were measured per call only "
            "(LINE_MEMORY.MAX_LINE_EVENTS).",
            "  ! ",
        )
    for note in record.get("notes") or []:
        out += _wrap(str(note), "  note: ")
    if ctx["heaviest"]:
        out.append("")
        out.append("  Heaviest lines   increment  where")
        for h in ctx["heaviest"]:
            flag = "?" if h["flagged"] else " "
            out.append(
                f"  {h['total']:+16.1f} MiB{flag} {relpath(h['file'])}:{h['lineno']} "
                f"in {h['function']}"
            )
            if h["text"]:
                out.append(f"  {'':21}{_short(h['text'], WIDTH - 23)}")
        if any(h["flagged"] for h in ctx["heaviest"]):
            out.append("  ? part measured while other threads ran (it may be theirs)")
    return "\n".join(out)


# --- instances ---------------------------------------------------------------------------


def instances(stats: Mapping[str, Any], *, sites: int = 3) -> str:
    """Instance counts per model, their creation sites, and the panel's findings."""
    from ..instances.report import report

    title = "Model instances"
    early = _unavailable(title, stats)
    if early is not None and not stats.get("record"):
        return "\n".join(early)
    record = stats["record"]
    ctx = report(record)
    out = _head(title, ctx["subtitle_text"])
    out += early or []
    models = ctx["models"]
    if not models:
        out.append("  No model instance was built.")
    else:
        out.append("")
        out.append("      count  alive after response      size (est.)  model")
        for m in models[:TOP]:
            size = m.get("size")
            size_text = f"{size['estimated_total'] / 1024:,.0f} KiB" if size else "-"
            out.append(
                f"  {m['count_text']:>9}  {m['alive_text']:<24} {size_text:>12}  {m['label']}"
            )
            for site in m["sites"][:sites]:
                w = site.get("where") or {}
                out.append(
                    f"  {'':11}{site['count_text']:>7} at {relpath(w.get('file') or '')}:"
                    f"{w.get('line')} in {w.get('function')}"
                )
                if w.get("code"):
                    out.append(f"  {'':22}{_short(w['code'], WIDTH - 24)}")
            more = len(m["sites"]) - sites + int(m.get("sites_more") or 0)
            if more > 0:
                out.append(f"  {'':11}(+{more} more sites)")
        if len(models) > TOP:
            out.append(f"  (+{len(models) - TOP} more models)")
    if ctx["findings"]:
        out.append("")
        out.append("  Findings")
        for f in ctx["findings"]:
            out += _wrap(f["text"], "  ! ")
            if f.get("fix"):
                out += _wrap(f"fix: {f['fix']}", "      ")
    if record.get("site_every", 1) and int(record.get("site_every") or 1) > 1:
        out.append(
            f"  note: call sites counted for every {record['site_every']}th instance "
            "(INSTANCES.STACK_SAMPLE_EVERY)"
        )
    return "\n".join(out)


# --- explain -----------------------------------------------------------------------------


def explain(stats: Mapping[str, Any], *, shapes: int = 8) -> str:
    """The query shapes by impact, where they were issued, and the plan findings with fixes."""
    from ..conf import get_config
    from ..explain.report import report

    title = "EXPLAIN"
    early = _unavailable(title, stats)
    if early is not None and not stats.get("record"):
        return "\n".join(early)
    record = stats["record"]
    found = report(record, get_config()["EXPLAIN"])
    analysed = found.shapes
    out = _head(title, found.subtitle)
    out += early or []
    vendors = ", ".join(sorted(set((record.get("vendors") or {}).values()))) or "?"
    out.append(
        f"  {count(record.get('statements', 0), 'statement')} in {count(len(analysed), 'shape')} · "
        f"{record.get('query_ms', 0):,.1f} ms in SQL · {vendors}"
    )
    for note in record.get("notes") or []:
        out += _wrap(str(note), "  note: ")
    if analysed:
        out.append("")
        out.append("  Shapes by impact (count x time)")
    for shape in analysed[:shapes]:
        out.append(
            f"  {shape.get('count', 0):>5} x {shape.get('total_ms', 0):8.1f} ms  "
            f"{_short(shape.get('sql') or '', WIDTH - 24)}"
        )
        lines = shape.get("lines") or []
        line = next((ln for ln in lines if ln.get("project")), lines[0] if lines else None)
        if line:
            out.append(
                f"  {'':20}issued at {relpath(line.get('file') or '')}:{line.get('line')} "
                f"in {line.get('function')}"
            )
        if shape.get("plan_error"):
            out += _wrap(f"not explained: {shape['plan_error']}", " " * 22)
        for finding in shape["findings"]:
            out += _wrap(f"{finding['title']}. {finding.get('detail') or ''}", " " * 20 + "! ")
            if finding.get("suggestion"):
                out += _wrap(f"fix: {finding['suggestion']}", " " * 24)
            if finding.get("orm"):
                out += _wrap(f"in Django: {finding['orm']}", " " * 24)
    if len(analysed) > shapes:
        out.append(f"  (+{len(analysed) - shapes} more shapes)")
    return "\n".join(out)


#: Short panel name -> renderer, in report order.
RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "sampling": sampling,
    "memory": line_memory,
    "instances": instances,
    "explain": explain,
}


def report(stats_by_panel: Mapping[str, Mapping[str, Any]]) -> str:
    """Every chosen panel's section, in a fixed order, separated by blank lines."""
    parts = [RENDERERS[name](stats_by_panel[name]) for name in RENDERERS if name in stats_by_panel]
    return "\n\n".join(parts) + "\n"


def timings(elapsed_ms: list[float]) -> str:
    """``3 runs: median 41.2 ms, min-max 39.8-47.0 ms`` (request time through the stack)."""
    import statistics

    if not elapsed_ms:
        return "no runs"
    if len(elapsed_ms) == 1:
        return f"1 run: {elapsed_ms[0]:,.1f} ms"
    return (
        f"{len(elapsed_ms)} runs: median {statistics.median(elapsed_ms):,.1f} ms, "
        f"min–max {min(elapsed_ms):,.1f}–{max(elapsed_ms):,.1f} ms"
    )
