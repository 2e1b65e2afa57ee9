"""From raw samples to a stored call tree, and from the stored tree to findings.

Recording (:func:`build_tree`) happens once per request: stacks are cut to the
view (or to the middleware chain below the panel), merged into a call tree and
pruned to ``MAX_NODES`` nodes, saying how much was pruned. Everything else here
reads the *stored* record only, since the toolbar renders from JSON later.

Stored tree format, compact and JSON-native:

* ``functions``: ``[[name, filename, first_line, is_project], ...]``
* ``nodes``: preorder ``[[parent_index, function_index, total, self], ...]``;
  node 0 is the root (function -1) and holds all in-scope samples.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from .raw import FrameKey, StackKey

HOT_LIMIT = 50
LINE_LIMIT = 100


def _w(value: float) -> float | int:
    """Counts are integers for the thread sampler; vmprof weights are gap-corrected floats."""
    as_int = int(value)
    return as_int if as_int == value else round(value, 2)


def scope_stacks(
    stacks: dict[StackKey, float],
    *,
    view_code: set[tuple[str, int]] | None,
    anchor: tuple[str, int] | None,
    anchor_depth: int | None,
) -> tuple[dict[StackKey, float], float]:
    """Keep the part of each stack at/under the view (or under the anchor frame).

    ``view_code`` holds (filename, first line) of the view's code: the stack is cut
    at its outermost frame running view code. Without it (middleware scope or an
    unresolved view) the stack is cut just below ``anchor`` (the panel's
    ``process_request``), found at ``anchor_depth`` or, failing that, innermost.
    Returns (kept stacks, weight of samples outside the scope).
    """
    kept: dict[StackKey, float] = {}
    outside = 0.0
    for (frames, line), weight in stacks.items():
        start = None
        if view_code:
            for i, (_, filename, first) in enumerate(frames):
                if (filename, first) in view_code:
                    start = i
                    break
        elif anchor is not None:
            if (
                anchor_depth is not None
                and anchor_depth < len(frames)
                and frames[anchor_depth][1:] == anchor
            ):
                start = anchor_depth + 1
            else:
                for i in range(len(frames) - 1, -1, -1):
                    if frames[i][1:] == anchor:
                        start = i + 1
                        break
        else:
            start = 0
        if start is None or start >= len(frames):
            outside += weight
            continue
        key = (frames[start:], line)
        kept[key] = kept.get(key, 0) + weight
    return kept, outside


def build_tree(
    stacks: dict[StackKey, float],
    *,
    max_nodes: int,
    is_project: Callable[[str], bool],
) -> dict[str, Any]:
    """Aggregate stacks into the stored tree plus hot functions and hot lines."""
    fn_index: dict[FrameKey, int] = {}
    functions: list[list[Any]] = []
    # node: [fn, total, self, children{fn: node}]
    root: list[Any] = [-1, 0.0, 0.0, {}]
    fn_self: dict[int, float] = {}
    fn_total: dict[int, float] = {}
    line_self: dict[tuple[int, int], float] = {}

    for (frames, line), weight in stacks.items():
        root[1] += weight
        node = root
        seen: set[int] = set()
        fi = -1
        for key in frames:
            fi = fn_index.get(key, -1)
            if fi < 0:
                fi = fn_index[key] = len(functions)
                functions.append([key[0], key[1], key[2], bool(is_project(key[1]))])
            child = node[3].get(fi)
            if child is None:
                child = node[3][fi] = [fi, 0.0, 0.0, {}]
            child[1] += weight
            node = child
            if fi not in seen:
                seen.add(fi)
                fn_total[fi] = fn_total.get(fi, 0.0) + weight
        node[2] += weight
        if fi >= 0:
            fn_self[fi] = fn_self.get(fi, 0.0) + weight
            if line:
                line_self[(fi, line)] = line_self.get((fi, line), 0.0) + weight

    # Select nodes: all if they fit, else the heaviest (parents always outrank children).
    flat: list[tuple[float, int, int, list[Any]]] = []  # (total, depth, order, node)
    todo: list[tuple[list[Any], int]] = [(root, 0)]
    while todo:
        node, depth = todo.pop()
        flat.append((node[1], depth, len(flat), node))
        todo.extend((c, depth + 1) for c in node[3].values())
    keep: set[int] | None = None
    pruned_nodes = 0
    if len(flat) > max_nodes:
        flat.sort(key=lambda t: (-t[0], t[1], t[2]))
        keep = {id(t[3]) for t in flat[:max_nodes]}
        pruned_nodes = len(flat) - max_nodes

    nodes: list[list[Any]] = []
    pruned_weight = 0.0
    order: list[tuple[list[Any], int]] = [(root, -1)]
    while order:
        node, parent = order.pop()
        index = len(nodes)
        nodes.append([parent, node[0], _w(node[1]), _w(node[2])])
        children = sorted(node[3].values(), key=lambda c: -c[1])
        for child in reversed(children):
            if keep is None or id(child) in keep:
                order.append((child, index))
            else:
                pruned_weight += child[1]

    used = {n[1] for n in nodes if n[1] >= 0}
    hot_ids = set(sorted(fn_self, key=lambda f: -fn_self[f])[:HOT_LIMIT])
    hot_ids |= set(sorted(fn_total, key=lambda f: -fn_total[f])[:HOT_LIMIT])
    hot = [[f, _w(fn_self.get(f, 0.0)), _w(fn_total.get(f, 0.0))] for f in sorted(hot_ids)]
    lines = sorted(line_self.items(), key=lambda kv: -kv[1])[:LINE_LIMIT]
    referenced = used | hot_ids | {fi for (fi, _), _ in lines}

    # Drop functions nothing refers to any more (pruned away) and renumber.
    remap: dict[int, int] = {}
    kept_functions: list[list[Any]] = []
    for old in sorted(referenced):
        remap[old] = len(kept_functions)
        kept_functions.append(functions[old])
    for n in nodes:
        if n[1] >= 0:
            n[1] = remap[n[1]]
    for h in hot:
        h[0] = remap[h[0]]
    return {
        "functions": kept_functions,
        "nodes": nodes,
        "hot": hot,
        "lines": [[remap[fi], line, _w(w)] for (fi, line), w in lines],
        "pruned": {
            "nodes": pruned_nodes,
            "samples": _w(pruned_weight),
            "max_nodes": max_nodes,
            "functions": len(functions) - len(kept_functions),
        },
    }


# --- analysis of the stored record ------------------------------------------------------


def _label(fn: list[Any]) -> str:
    return str(fn[0])


def hot_functions(record: dict[str, Any], by: str = "self", limit: int = 15) -> list[dict]:
    """The hottest functions by ``self`` or ``total`` samples, with shares of the scope."""
    total = float(record.get("samples") or 0)
    functions = record.get("functions") or []
    rows = []
    for fi, self_w, total_w in record.get("hot") or []:
        if not 0 <= fi < len(functions):
            continue
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


def hot_lines(record: dict[str, Any], limit: int = 10) -> list[dict[str, Any]]:
    total = float(record.get("samples") or 0)
    functions = record.get("functions") or []
    out = []
    for fi, line, weight in (record.get("lines") or [])[:limit]:
        if 0 <= fi < len(functions):
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
    return out


def project_split(record: dict[str, Any]) -> dict[str, float]:
    """Self samples in project code vs library code (Django, third-party, stdlib)."""
    functions = record.get("functions") or []
    project = library = 0.0
    for _parent, fi, _total, self_w in record.get("nodes") or []:
        if fi < 0 or not self_w:
            continue
        if functions[fi][3]:
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


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def own_hooks(record: dict[str, Any], package_dir: str = _PACKAGE_DIR) -> dict[str, Any]:
    """Samples inside this package's own hooks that run in the view's thread.

    With other panels of this package on, their per-instance, per-query and per-line hooks
    run inside the view and are sampled with it: their cost is real, but not the user's
    code's, and the panel must say how much of the profile it is. A sample counts when its
    innermost frame is in our package or in something our hook called (``traceback``,
    ``psutil``); not when it is in the work a hook forwards to (the query that Explain's
    execute wrapper runs, the receivers that the instances hook passes ``post_init`` on to).
    """
    functions = record.get("functions") or []
    nodes = record.get("nodes") or []
    owner_of: list[str | None] = [
        _hook_owner(str(f[1])[len(package_dir) :])
        if f[1] and str(f[1]).startswith(package_dir)
        else None
        for f in functions
    ]
    forwarders = [
        bool(owner_of[i]) and str(f[0]).rsplit(".", 1)[-1] in _FORWARDERS
        for i, f in enumerate(functions)
    ]
    owner: list[str | None] = [None] * len(nodes)
    weight = 0.0
    by_panel: dict[str, float] = {}
    for i, (parent, fi, _total, self_w) in enumerate(nodes):
        if fi >= 0 and owner_of[fi]:
            owner[i] = owner_of[fi]
        elif parent >= 0 and owner[parent] and not forwarders[nodes[parent][1]]:
            owner[i] = owner[parent]
        name = owner[i]
        if name and self_w:
            weight += self_w
            by_panel[name] = by_panel.get(name, 0.0) + self_w
    samples = float(record.get("samples") or 0) or float(nodes[0][2] if nodes else 0)
    return {
        "weight": _w(weight),
        "pct": 100.0 * weight / samples if samples else 0.0,
        "panels": [
            {"panel": name, "pct": 100.0 * w / samples if samples else 0.0}
            for name, w in sorted(by_panel.items(), key=lambda kv: -kv[1])
        ],
    }


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


def top_project_function(record: dict[str, Any]) -> dict[str, Any] | None:
    """The project function with the most self samples (the view itself if nothing else)."""
    for row in hot_functions(record, "self", limit=HOT_LIMIT * 2):
        if row["project"]:
            return row
    return None


def headline(record: dict[str, Any]) -> str:
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


def thinness(record: dict[str, Any], min_samples: int) -> dict[str, Any] | None:
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


def iter_paths(record: dict[str, Any]) -> Iterable[tuple[list[int], float]]:
    """(function indices root-first, self weight) for every node with own samples.

    Samples hidden in pruned children are reported on their parent as a pseudo
    frame index -2 (rendered as "(pruned)").
    """
    nodes = record.get("nodes") or []
    paths: list[list[int]] = []
    child_sum = [0.0] * len(nodes)
    for parent, _fi, total, _self in nodes:
        if parent >= 0:
            child_sum[parent] += total
    for i, (parent, fi, total, self_w) in enumerate(nodes):
        path = [*paths[parent], fi] if parent >= 0 else []
        paths.append(path)
        if self_w and path:
            yield path, self_w
        rest = total - self_w - child_sum[i]
        if rest > 1e-6 and path:
            yield [*path, -2], rest


def make_record(
    raw: Any,
    *,
    engine_reason: str,
    scope: str,
    view_code: set[tuple[str, int]] | None,
    view_label: str,
    anchor: tuple[str, int] | None,
    anchor_depth: int | None,
    max_nodes: int,
    is_project: Callable[[str], bool],
    vmprof_missing: bool = False,
    busy: bool = False,
    followed: bool = False,
) -> dict[str, Any]:
    """The JSON-native record of one request's profile (a :class:`RawProfile` in).

    ``followed``: the engine followed this request's view call across threads (ASGI,
    async views) and already cut every stack at it; ``away`` counts ticks when that
    call ran nowhere (awaiting, other requests' code).
    """
    import time

    t0 = time.perf_counter()
    notes = list(raw.notes)
    if scope == "view" and not view_code and not raw.not_sampled:
        notes.append(
            "The view could not be resolved, so the profile covers the middleware "
            "chain below the toolbar."
        )
    kept, outside = scope_stacks(
        raw.stacks,
        view_code=view_code if scope == "view" else None,
        anchor=anchor,
        anchor_depth=anchor_depth,
    )
    tree = build_tree(kept, max_nodes=max_nodes, is_project=is_project)
    samples = sum(kept.values())
    away = float(getattr(raw, "away_samples", 0.0) or 0.0)
    all_samples = samples + outside + away
    duration_ms = raw.duration_s * 1000.0
    overhead = {k: round(v, 3) for k, v in raw.overhead_ms.items()}
    overhead["record"] = round((time.perf_counter() - t0) * 1000.0, 3)
    return {
        "engine": raw.engine,
        "engine_reason": engine_reason,
        "mode": raw.mode,
        "interval_ms": raw.interval_ms,
        "scope": "view" if scope == "view" and view_code else "middleware",
        "root_label": view_label if scope == "view" and view_code else "middleware chain",
        "duration_ms": round(duration_ms, 3),
        "samples": _w(samples),
        "outside": _w(outside),
        "foreign": _w(raw.foreign_samples),
        "away": _w(away),
        "followed": followed,
        "switch_ms": getattr(raw, "switch_ms", None),
        "threads": int(getattr(raw, "threads", 0) or 0),
        "not_sampled": getattr(raw, "not_sampled", None),
        "rate_hz": round(all_samples / raw.duration_s, 1) if raw.duration_s > 0 else 0.0,
        "overhead_ms": overhead,
        "notes": notes,
        "raw_file": raw.raw_file,
        "vmprof_missing": vmprof_missing,
        "busy": busy,
        **tree,
    }
