"""Deep sizes of a sample of instances, with Pympler's asizeof."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from django.db.models import Model

# Per-instance caches that point at other model instances (counted under their own model).
_RELATION_CACHES = ("_prefetched_objects_cache",)


def own_size(obj: Any, asizeof: Any) -> int:
    """Deep size of one instance and its own field values, with Pympler's asizeof.

    A plain ``asizeof(instance)`` follows the related-object caches: one Review reaches its
    Product, whose prefetched reviews reach every other Review, so 2,000 reviews measured
    ~260 MB. Related instances and prefetch caches are left out here: each is counted
    under its own model. One ``asizeof`` call sizes the field values and the ``_state``
    values together (Pympler's set-up costs about as much as sizing a small instance).
    """
    own = {
        k: v
        for k, v in obj.__dict__.items()
        if k != "_state" and k not in _RELATION_CACHES and not isinstance(v, Model)
    }
    state = obj.__dict__.get("_state")
    if state is None:
        return sys.getsizeof(obj) + asizeof.asizeof(own)
    state_dict = {k: v for k, v in vars(state).items() if k != "fields_cache"}
    return sys.getsizeof(obj) + sys.getsizeof(state) + asizeof.asizeof(own, state_dict)


#: Size samples measured per model before measuring may stop early.
MIN_SIZE_SAMPLES = 10
#: ... once the standard error of the mean size is below this fraction of the mean.
SIZE_PRECISION = 0.02


def measure_sizes(sample: dict[type, list[Any]]) -> dict[type, dict[str, Any]]:
    """Size of the sampled instances of each model (see :func:`own_size`).

    Sizing is the largest fixed cost of the panel per request (about 20 us per instance), and
    instances of one model are mostly alike: after :data:`MIN_SIZE_SAMPLES`, measuring stops
    as soon as the mean is known to within :data:`SIZE_PRECISION` (standard error).
    """
    from pympler import asizeof

    out: dict[type, dict[str, Any]] = {}
    for model, objs in sample.items():
        if not objs:
            continue
        start = time.perf_counter()
        sizes: list[int] = []
        total = 0.0
        squares = 0.0
        for obj in objs:
            size = own_size(obj, asizeof)
            sizes.append(size)
            total += size
            squares += size * size
            k = len(sizes)
            if k >= MIN_SIZE_SAMPLES and k < len(objs):
                mean = total / k
                variance = max(0.0, (squares - k * mean * mean) / (k - 1))
                if math.sqrt(variance / k) <= SIZE_PRECISION * mean:
                    break
        out[model] = {
            "mean": total / len(sizes),
            "min": min(sizes),
            "max": max(sizes),
            "samples": len(sizes),
            "sampled": len(objs),  # instances held for sizing (up to INSTANCES.SIZE_SAMPLE)
            "ms": (time.perf_counter() - start) * 1000,
        }
    return out
