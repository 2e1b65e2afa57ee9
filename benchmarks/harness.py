"""Side-by-side measurement: variants of one workload, interleaved, in one process.

Only ratios measured in the same run are reported (never absolute times across runs):
each round runs every variant once in a shuffled order, after warm-up rounds, and the
report gives the median, the spread (min-max) and the ratio of medians to the baseline.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Variant:
    name: str
    setup: Callable[[], AbstractContextManager[Any]] = nullcontext
    baseline: bool = False


@dataclass
class Result:
    comparison: str
    workload: str
    variant: str
    times: list[float]
    baseline: bool = False
    goal: str = ""
    ratio: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio_text(self) -> str:
        """``x1.23``; for a row with no baseline to divide by, a dash and why (never "xnan")."""
        if self.ratio == self.ratio:  # not NaN
            return f"x{self.ratio:.2f}"
        return f"— ({self.extra.get('no_ratio') or 'no baseline to compare with'})"

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def low(self) -> float:
        return min(self.times)

    @property
    def high(self) -> float:
        return max(self.times)


def measure(
    comparison: str,
    workload: str,
    run: Callable[[], Any],
    variants: list[Variant],
    *,
    rounds: int,
    warmup: int = 1,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Result]:
    """Time ``run`` under each variant; variants are interleaved within every round.

    ``clock=time.thread_time`` measures the CPU time of this thread instead of wall time: for
    single-threaded, in-process work on a machine shared with other jobs it leaves out the
    time the process waited for a CPU, the main source of noise there.
    """
    rng = random.Random(seed)
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    for index in range(warmup + rounds):
        order = variants[:]
        rng.shuffle(order)
        for variant in order:
            with variant.setup():
                gc.collect()
                start = clock()
                run()
                elapsed = clock() - start
            if index >= warmup:
                times[variant.name].append(elapsed)
    results = [
        Result(comparison, workload, v.name, times[v.name], baseline=v.baseline) for v in variants
    ]
    base = next((r for r in results if r.baseline), results[0])
    for r in results:
        r.ratio = r.median / base.median if base.median else float("nan")
    return results


@contextmanager
def combined(*managers: Callable[[], AbstractContextManager[Any]]) -> Iterator[None]:
    from contextlib import ExitStack

    with ExitStack() as stack:
        for m in managers:
            stack.enter_context(m())
        yield
