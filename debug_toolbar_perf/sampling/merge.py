"""Merged profiles: the samples of several stored records of one view as one record.

A 14 ms view gets a handful of samples per request, too few to name its hot function; the
same view reloaded ten times has ten times as many. Merging works on the stored trees alone
(call paths are matched by function name, file and first line), so it needs nothing but the
records the toolbar's store already holds, and the result reads like any record
(``report.hot_functions``, the flame graph, speedscope). The hot-function rows add up each
record's own rows (its top ``HOT_LIMIT`` by self and by total) and keep every function any
record kept, so a function outside one record's top rows counts only where it made them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from .calltree import (
    FN_FILE,
    FN_LINE,
    FN_NAME,
    LINE_LIMIT,
    SamplingRecord,
    _w,
)

FunctionKey = tuple[str, str, int]


def function_key(fn: Sequence[Any]) -> FunctionKey:
    """What names a function across records (indices differ from record to record)."""
    return (str(fn[FN_NAME]), str(fn[FN_FILE]), int(fn[FN_LINE] or 0))


def merge_records(records: Sequence[SamplingRecord]) -> SamplingRecord:
    """One record holding every sample of ``records`` (the first one's settings)."""
    functions: list[list[Any]] = []
    fn_index: dict[FunctionKey, int] = {}

    def fid(fn: Sequence[Any]) -> int:
        key = function_key(fn)
        if key not in fn_index:
            fn_index[key] = len(functions)
            functions.append(list(fn))
        return fn_index[key]

    # path (function ids root-first) -> [total, self]
    paths: dict[tuple[int, ...], list[float]] = {(): [0.0, 0.0]}
    children: dict[tuple[int, ...], list[tuple[int, ...]]] = {(): []}
    fn_self: dict[int, float] = {}
    fn_total: dict[int, float] = {}
    line_self: dict[tuple[int, int], float] = {}
    for record in records:
        own = record.get("functions") or []
        mine: list[tuple[int, ...]] = []
        for parent, fi, total, self_w in record.get("nodes") or []:
            if parent < 0:
                path: tuple[int, ...] = ()
            else:
                path = (*mine[parent], fid(own[fi]) if fi >= 0 else -2)
            mine.append(path)
            if path not in paths:
                paths[path] = [0.0, 0.0]
                children[path] = []
                children[path[:-1]].append(path)
            paths[path][0] += float(total)
            paths[path][1] += float(self_w)
        for fi, self_w, total_w in record.get("hot") or []:
            if 0 <= fi < len(own):
                f = fid(own[fi])
                fn_self[f] = fn_self.get(f, 0.0) + float(self_w)
                fn_total[f] = fn_total.get(f, 0.0) + float(total_w)
        for fi, line, weight in record.get("lines") or []:
            if 0 <= fi < len(own):
                key = (fid(own[fi]), int(line))
                line_self[key] = line_self.get(key, 0.0) + float(weight)

    nodes: list[list[Any]] = []
    order: list[tuple[tuple[int, ...], int]] = [((), -1)]
    while order:
        path, parent = order.pop()
        index = len(nodes)
        total, self_w = paths[path]
        nodes.append([parent, path[-1] if path else -1, _w(total), _w(self_w)])
        for child in sorted(children[path], key=lambda c: paths[c][0]):
            order.append((child, index))
    # Every function some record kept a row for: cutting to HOT_LIMIT again here would
    # pick among ties at the cut by merge order, and drop rows a record had.
    hot_ids = set(fn_self) | set(fn_total)
    lines = sorted(line_self.items(), key=lambda kv: -kv[1])[:LINE_LIMIT]
    first: dict[str, Any] = dict(records[0]) if records else {}
    merged = {
        **first,
        "functions": functions,
        "nodes": nodes,
        "hot": [[f, _w(fn_self.get(f, 0.0)), _w(fn_total.get(f, 0.0))] for f in sorted(hot_ids)],
        "lines": [[fi, line, _w(w)] for (fi, line), w in lines],
        "pruned": {
            "nodes": sum(int((r.get("pruned") or {}).get("nodes") or 0) for r in records),
            "samples": _w(sum(float((r.get("pruned") or {}).get("samples") or 0) for r in records)),
            "max_nodes": int((first.get("pruned") or {}).get("max_nodes") or 0),
            "functions": 0,
        },
        "samples": _w(sum(float(r.get("samples") or 0) for r in records)),
        "duration_ms": round(sum(float(r.get("duration_ms") or 0) for r in records), 3),
        "export_file": None,
        "raw_file": None,
    }
    return cast(SamplingRecord, merged)
