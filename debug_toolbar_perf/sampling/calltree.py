"""From raw samples to a stored call tree (findings on it are :mod:`.report`).

Recording (:func:`build_tree`) happens once per request: stacks are cut to the
view (or to the middleware chain below the panel), merged into a call tree and
pruned to ``MAX_NODES`` nodes, saying how much was pruned.

Stored tree format, compact and JSON-native:

* ``functions``: ``[[name, filename, first_line, is_project], ...]``
* ``nodes``: preorder ``[[parent_index, function_index, total, self], ...]``;
  node 0 is the root (function -1) and holds all in-scope samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypedDict

from .raw import FrameKey, StackKey

HOT_LIMIT = 50
LINE_LIMIT = 100

# The tree is stored as rows of columns (a 60 s profile stays near 250 kB in the store,
# where dicts per node would triple it); these name the columns.
#: ``functions`` rows: ``[name, filename, first_line, is_project]``.
FN_NAME, FN_FILE, FN_LINE, FN_PROJECT = range(4)
#: ``nodes`` rows, preorder, node 0 the root: ``[parent, function, total, self]``.
NODE_PARENT, NODE_FN, NODE_TOTAL, NODE_SELF = range(4)
#: ``hot`` rows: ``[function, self, total]``; ``lines`` rows: ``[function, line, self]``.
HOT_FN, HOT_SELF, HOT_TOTAL = range(3)

Weight = float | int  # sample counts (ints) or vmprof's gap-corrected weights (floats)


class Pruned(TypedDict):
    nodes: int
    samples: Weight
    max_nodes: int
    functions: int


class CallTree(TypedDict):
    """The stored call tree (see the column names above)."""

    functions: list[list[Any]]
    nodes: list[list[Any]]
    hot: list[list[Any]]
    lines: list[list[Any]]
    pruned: Pruned


class SamplingRecord(CallTree, total=False):
    """What the sampling panel stores per request (``Stats["record"]``)."""

    engine: str
    engine_reason: str
    mode: str
    interval_ms: float
    scope: str
    root_label: str
    duration_ms: float
    cpu_ms: float | None  # the request thread's CPU time (WSGI; None when followed)
    samples: Weight
    outside: Weight
    foreign: Weight
    away: Weight
    followed: bool
    switch_ms: float | None
    threads: int
    not_sampled: str | None
    rate_hz: float
    overhead_ms: dict[str, float]
    notes: list[str]
    raw_file: str | None
    vmprof_missing: bool
    busy: bool
    method: str
    path: str
    export_file: str | None


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
) -> CallTree:
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
            n[1] = remap[int(n[1])]
    for h in hot:
        h[0] = remap[int(h[0])]
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


def iter_paths(record: CallTree) -> Iterable[tuple[list[int], float]]:
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
) -> SamplingRecord:
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
