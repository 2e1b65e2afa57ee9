"""Whole-heap summary with Pympler's muppy, safe against Django's lazy objects.

``muppy.get_objects()`` as published runs ``isinstance`` on every object the
garbage collector knows; on an unevaluated ``LazyObject`` that reads
``__class__`` and evaluates it (a missing GEOS library raised here; in a real
app it would run ``request.user``'s database lookup). We build the object list
ourselves from ``gc.get_objects()``, dropping lazy objects whose ``_wrapped`` is
still empty - checked with ``type()`` and ``object.__getattribute__``, which
never trigger evaluation - and hand that list to ``summary.summarize``.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

from django.utils.functional import LazyObject, empty


def _is_unevaluated_lazy(obj: Any) -> bool:
    if not issubclass(type(obj), LazyObject):  # type() never evaluates a lazy object
        return False
    try:
        return object.__getattribute__(obj, "_wrapped") is empty
    except AttributeError:
        return True


def safe_objects() -> tuple[list[Any], int]:
    """Every gc-tracked object plus their direct referents (as muppy does), minus
    unevaluated lazy objects. Returns (objects, lazy objects skipped)."""
    skipped = 0
    objs: list[Any] = []
    for obj in gc.get_objects():
        if _is_unevaluated_lazy(obj):
            skipped += 1
            continue
        objs.append(obj)
    # muppy also adds objects that the gc does not track but tracked ones refer to
    seen = {id(o) for o in objs}
    extra = []
    for ref in gc.get_referents(*objs):
        if id(ref) not in seen and not gc.is_tracked(ref):
            seen.add(id(ref))
            if not _is_unevaluated_lazy(ref):
                extra.append(ref)
    objs.extend(extra)
    return objs, skipped


def heap_summary(limit: int = 30) -> dict[str, Any]:
    """Top types by total size in the whole process (Pympler summary)."""
    from pympler import summary

    start = time.perf_counter()
    objs, skipped = safe_objects()
    try:
        rows = summary.summarize(objs)
    finally:
        count = len(objs)
        del objs
    rows.sort(key=lambda r: -r[2])
    return {
        "rows": [
            {"type": str(name)[:200], "count": int(n), "size": int(size)}
            for name, n, size in rows[:limit]
        ],
        "objects": count,
        "lazy_skipped": skipped,
        "seconds": round(time.perf_counter() - start, 3),
        "python": sys.version.split()[0],
    }
