"""From a finished collector to the JSON-native record the toolbar stores."""

from __future__ import annotations

import gc
import time
from typing import Any, TypedDict

from ..records import Frame, frame_json
from ..scope import is_project_file
from .collector import Collector, Site
from .sizes import MIN_SIZE_SAMPLES, SIZE_PRECISION, measure_sizes

# -- from a finished collector to a JSON-native record --------------------------------

#: Call sites kept per model in the record (the rest are summed).
MAX_SITES = 10


def model_label(model: type) -> str:
    meta = getattr(model, "_meta", None)
    return str(getattr(meta, "label", None) or f"{model.__module__}.{model.__qualname__}")


class SiteRecord(TypedDict):
    """Where instances of one model were built, with the stack (innermost first)."""

    count: int
    where: Frame | None
    project_index: int | None
    called: str | None  # the library call the project line made (e.g. QuerySet.__bool__)
    stack: list[Frame]
    related: dict[str, str] | None
    query_count: int
    queries: list[int]


class SizeRecord(TypedDict):
    mean: float
    min: int
    max: int
    samples: int
    sampled: int
    ms: float
    estimated_total: float


class ModelRecord(TypedDict):
    label: str
    concrete: str | None
    proxy: bool
    count: int
    alive: int
    alive_tracked: int
    size: SizeRecord | None
    sites: list[SiteRecord]
    sites_more: int
    sites_more_count: int


class InstancesRecord(TypedDict):
    """What the instances panel stores per request (``Stats["record"]``)."""

    total: int
    models: list[ModelRecord]
    threshold: int
    n_plus_one: int
    site_capture: bool
    site_every: int
    site_attributed: int
    size_sample: int
    size_min_samples: int
    size_precision_pct: float
    alive_sample: int
    full_gc: bool
    hook_error: str | None
    pympler: bool
    size_error: str | None
    sql: dict[str, Any]
    elapsed_ms: float
    hook: str


def _size_record(size: dict[str, Any], count: int) -> SizeRecord:
    return {
        "mean": size["mean"],
        "min": size["min"],
        "max": size["max"],
        "samples": size["samples"],
        "sampled": size["sampled"],
        "ms": size["ms"],
        "estimated_total": size["mean"] * count,
    }


def _frame_json(filename: str, lineno: int, function: str) -> Frame:
    return frame_json(filename, lineno, function, _project_file(filename))


def _project_file(filename: str) -> bool:
    try:
        return is_project_file(filename)
    except Exception:
        return False


def _site_json(site: Site) -> SiteRecord:
    stack = [_frame_json(*frame) for frame in site.stack]
    idx = site.project_index
    where = stack[idx] if idx is not None else (stack[0] if stack else None)
    below = None  # the library call the project line made (e.g. QuerySet.__bool__)
    if idx is not None and idx > 0:
        below = stack[idx - 1]["function"]
    return {
        "count": site.count,
        "where": where,
        "project_index": idx,
        "called": below,
        "stack": stack,
        "related": site.related,
        "query_count": site.query_count,
        "queries": list(site.queries),
    }


def build_record(
    collector: Collector,
    *,
    queries: list[Any] | None,
    threshold: int,
    n_plus_one: int,
    pympler: bool,
    full_gc: bool = False,
) -> InstancesRecord:
    """The JSON-native record of one request's instances."""
    sample = collector.release_sample()
    sizes: dict[type, dict[str, Any]] = {}
    size_error = None
    if pympler:
        try:
            sizes = measure_sizes(sample)
        except Exception as exc:  # asizeof on an odd object: counts still stand
            size_error = f"{type(exc).__name__}: {exc}"[:500]
    sample.clear()
    del sample
    alive = collector.alive()
    if any(a for a, _ in alive.values()):
        # Cycles built during the request (a class-based view holding its QuerySet through
        # the bound method View.setup() stores as self.head) are garbage, not leaks. By
        # default only the young generations: a full collection costs 0.05-0.2 s on a big
        # heap (measured: it made request 1,000 x2.3 slower than request 1).
        gc.collect(2 if full_gc else 1)
        alive = collector.alive()

    by_model: dict[type, list[Site]] = {}
    for site in collector.sites.values():
        by_model.setdefault(site.model, []).append(site)
    used_queries: set[int] = set()
    models: list[ModelRecord] = []
    for model, count in sorted(collector.counts.items(), key=lambda kv: -kv[1]):
        meta = getattr(model, "_meta", None)
        concrete = getattr(meta, "concrete_model", model) or model
        sites = sorted(by_model.get(model, []), key=lambda s: -s.count)
        kept = sites[:MAX_SITES]
        for s in kept:
            used_queries.update(s.queries[:20])
        size = sizes.get(model)
        alive_n, tracked = alive.get(model, (0, 0))
        models.append(
            {
                "label": model_label(model),
                "concrete": model_label(concrete) if concrete is not model else None,
                "proxy": bool(getattr(meta, "proxy", False)),
                "count": count,
                "alive": alive_n,
                "alive_tracked": tracked,
                "size": None if size is None else _size_record(size, count),
                "sites": [_site_json(s) for s in kept],
                "sites_more": len(sites) - len(kept),
                "sites_more_count": sum(s.count for s in sites[len(kept) :]),
            }
        )
    sql: dict[str, Any] = {"present": queries is not None, "total": 0, "queries": {}}
    if queries is not None:
        sql["total"] = len(queries)
        for index in sorted(used_queries):
            if 0 <= index < len(queries):
                q = queries[index]
                sql["queries"][str(index)] = {
                    "raw_sql": str(q.get("raw_sql") or q.get("sql") or "")[:1000],
                    "alias": str(q.get("alias") or ""),
                }
    return {
        "total": sum(collector.counts.values()),
        "models": models,
        "threshold": threshold,
        "n_plus_one": n_plus_one,
        "site_capture": collector.capture_sites,
        "site_every": collector.site_every,
        "site_attributed": collector.sampled_sites,
        "size_sample": collector.size_sample,
        "size_min_samples": MIN_SIZE_SAMPLES,
        "size_precision_pct": SIZE_PRECISION * 100,
        "alive_sample": collector.alive_sample,
        "full_gc": full_gc,
        "hook_error": collector.hook_error,
        "pympler": pympler,
        "size_error": size_error,
        "sql": sql,
        "elapsed_ms": ((collector.stopped or time.perf_counter()) - collector.started) * 1000,
        "hook": "django.db.models.signals.post_init.send",
    }
