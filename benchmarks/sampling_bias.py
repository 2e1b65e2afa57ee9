"""Does the thread sampler over-count blocking calls? Sampled vs true share of time in sleeps.

Usage: python benchmarks/sampling_bias.py [RUNS]

A loop alternates CPU work and short sleeps (a stand-in for I/O and database calls, which
release the GIL). The thread sampler needs the GIL for every sample; running code hands it
over only at the GIL switch interval or when it blocks, so a sampler that waits long for
the GIL takes its samples at the next blocking call. Prints, per work pattern and switch
interval, the measured share of time in the sleeps ("true") and the share of samples there.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from debug_toolbar_perf.sampling import raw as raw_profile
from debug_toolbar_perf.sampling import thread as thread_engine

PATTERNS = ((2.0, 0.3), (10.0, 1.0))  # (ms of CPU work, ms of sleep) per loop turn
SWITCH = (None, 0.5)  # None: Python's default 5 ms switch interval


def cpu_part(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(50))


def io_part(seconds: float) -> None:
    time.sleep(seconds)


def mixed(cpu_ms: float, io_ms: float, total: float = 0.8) -> float:
    """Run the loop for ``total`` seconds; the measured share of time in io_part."""
    end = time.perf_counter() + total
    in_cpu = in_io = 0.0
    while time.perf_counter() < end:
        a = time.perf_counter()
        cpu_part(cpu_ms / 1000)
        b = time.perf_counter()
        io_part(io_ms / 1000)
        c = time.perf_counter()
        in_cpu += b - a
        in_io += c - b
    return in_io / (in_cpu + in_io)


def share(raw: raw_profile.RawProfile, name: str) -> float:
    hit = sum(n for (frames, _), n in raw.stacks.items() if any(f[0] == name for f in frames))
    return hit / raw.samples if raw.samples else float("nan")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"load average {os.getloadavg()[0]:.1f}; medians of {runs} runs of 0.8 s")
    for cpu_ms, io_ms in PATTERNS:
        for switch in SWITCH:
            rows = []
            for _ in range(runs):
                s = thread_engine.ThreadSampler(
                    threading.get_ident(), 1.0, "wall", switch_ms=switch
                )
                s.start()
                try:
                    true_share = mixed(cpu_ms, io_ms)
                finally:
                    s.stop()
                raw = s.result()
                rows.append((true_share, share(raw, "io_part"), raw.samples / raw.duration_s))
            label = "5 ms (default)" if switch is None else f"{switch} ms"
            print(
                f"{cpu_ms:g} ms CPU / {io_ms:g} ms sleep, switch interval {label:>14}: "
                f"true {statistics.median(r[0] for r in rows):.0%}, "
                f"sampled {statistics.median(r[1] for r in rows):.0%}, "
                f"{statistics.median(r[2] for r in rows):.0f} samples/s"
            )


if __name__ == "__main__":
    main()
