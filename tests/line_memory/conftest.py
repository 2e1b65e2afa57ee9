"""Line-memory tests measure figures, not speed: the heap reading's cost guards (which fall
back to tracemalloc, or skip the arena check, on a slow reading) would make them depend on
the machine's load. The guards are tested on their own (``test_session.py``).

The heap reading sends Python's objects to glibc while it runs: afterwards glibc may keep a
big free top chunk, from which a later 48 MB block is carved without touching new pages, so
a later RSS test would see 0.0 (RSS shows reuse; the heap tests made some). Each test ends
by giving glibc's free memory back (``malloc_trim``), as a fresh process would start."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator

import pytest

from debug_toolbar_perf.line_memory import session, sources


@pytest.fixture(autouse=True)
def _no_cost_guards(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sources, "HEAP_SLOW_READ_NS", 10**12)
    monkeypatch.setattr(session, "ARENA_READ_MAX_NS", 10**12)
    yield
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).malloc_trim(0)
