"""Where a memory reading comes from: the allocator's bytes in use ("heap", the default),
RSS (``/proc/self/statm``) or tracemalloc."""

from __future__ import annotations

import functools
import gc
import os
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

# -- memory sources ------------------------------------------------------------------

_tm_lock = threading.Lock()
_tm_users = 0
_tm_ours = False

#: Linux's current RSS, read with one pread (psutil is needed only where it is missing).
STATM = "/proc/self/statm"


def rss_needs_psutil() -> bool:
    """No ``/proc/self/statm`` here (not Linux): RSS is read with psutil."""
    return not os.access(STATM, os.R_OK)


class MemorySource:
    """Reads the process's memory in bytes: ``read()`` must be cheap."""

    name = ""
    label = ""
    meaning = ""

    def __init__(self) -> None:
        self.read: Callable[[], int] = lambda: 0
        #: ``raw()`` is the cheapest reading that changes whenever memory does, and
        #: ``value(raw())`` is what ``read()`` returns: the per-line hot path converts only
        #: a reading that differs from the last one (most lines change nothing).
        self.raw: Callable[[], Any] = self.read
        self.value: Callable[[Any], int] = int
        self.notes: list[str] = []

    def close(self) -> None:
        """Release what ``__init__`` took."""

    def peak(self) -> int | None:
        return None


class RSSSource(MemorySource):
    name = "rss"
    label = "RSS (resident set size)"
    meaning = (
        "RSS shows what the operating system sees: pages the process touched. Small "
        "allocations reuse memory the allocator already holds and can show 0.0; big "
        "blocks (mmapped) show up and go back to the system when freed."
    )

    def __init__(self) -> None:
        super().__init__()
        self._fd: int | None = None
        try:
            fd = os.open(STATM, os.O_RDONLY)
        except OSError:
            fd = None
        if fd is not None:
            self._fd = fd
            page = os.sysconf("SC_PAGE_SIZE")
            raw = functools.partial(os.pread, fd, 64, 0)

            def value(statm: bytes) -> int:
                return int(statm.split()[1]) * page

            def read() -> int:
                return value(raw())

            self.read, self.raw, self.value = read, raw, value
            self.how = STATM
        else:  # not Linux: psutil, one Process object (memory_profiler builds one per line)
            import psutil

            proc = psutil.Process()
            memory_info = proc.memory_info

            def read_psutil() -> int:
                return memory_info().rss

            self.read = self.raw = read_psutil
            self.how = "psutil"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class TracemallocSource(MemorySource):
    name = "tracemalloc"
    label = "tracemalloc (Python allocations)"
    meaning = (
        "Allocation tracing attributes exactly what Python allocated (tracemalloc's "
        "traced memory); memory outside Python's allocator is not counted. Tracing "
        "slows allocation-heavy code x3-x7 while it runs."
    )

    def __init__(self) -> None:
        global _tm_users, _tm_ours
        super().__init__()
        with _tm_lock:
            if _tm_users == 0:
                _tm_ours = not tracemalloc.is_tracing()
                if _tm_ours:
                    tracemalloc.start()
            _tm_users += 1
        self.owned = _tm_ours
        if not self.owned:
            self.notes.append(
                "tracemalloc was already running (started outside this panel); it was "
                "left running and its peak is not this request's."
            )
        get = tracemalloc.get_traced_memory

        def read() -> int:
            return get()[0]

        self.read = self.raw = read
        self.how = "tracemalloc.get_traced_memory()"
        self._closed = False

    def peak(self) -> int | None:
        return tracemalloc.get_traced_memory()[1] if self.owned else None

    def close(self) -> None:
        global _tm_users, _tm_ours
        if self._closed:
            return
        self._closed = True
        with _tm_lock:
            _tm_users -= 1
            if _tm_users == 0 and _tm_ours:
                tracemalloc.stop()
                _tm_ours = False


class HeapSource(MemorySource):
    name = "heap"
    label = "heap (bytes allocated and kept)"
    meaning = (
        "Bytes in use, counted as the allocator hands them out and takes them back, with "
        "Python's objects counted while the request is traced: what each line allocated "
        "and kept, the same on every reload whether or not it reused memory freed earlier. "
        "Objects made before tracing began are seen freed when they were malloc'd (over "
        "512 bytes), not when pymalloc made them. Mem usage is what has "
        "been counted in use since this process first counted (not the process's size)."
    )

    def __init__(self) -> None:
        from . import heap

        super().__init__()
        # Garbage of earlier requests still waiting in the youngest generation would be
        # freed by a collection on some line of this one: collect it first (cheap).
        gc.collect(0)
        self.read = self.raw = heap.acquire()  # RuntimeError: make_source falls back
        self.how = "counting allocator (malloc_usable_size of each block), objects via malloc"
        self._closed = False

    def close(self) -> None:
        from . import heap

        if not self._closed:
            self._closed = True
            heap.release()


def make_source(backend: str) -> MemorySource:
    """The reading for ``backend``. "heap" falls back to tracemalloc where it cannot run;
    "auto" (the default) is "heap", or RSS where the heap reading cannot run (tracemalloc
    would cost x3-x8: the user did not ask for it)."""
    if backend == "auto":
        try:
            return HeapSource()
        except RuntimeError as exc:
            rss: MemorySource = RSSSource()
            rss.notes.insert(
                0,
                f"The heap reading is not available here ({exc}): RSS measured instead, "
                "and a line reusing memory freed earlier shows 0.0 (set LINE_MEMORY.BACKEND "
                "to 'tracemalloc' for exact figures at x3-x8 the cost).",
            )
            return rss
    if backend == "heap":
        try:
            return HeapSource()
        except RuntimeError as exc:
            source = TracemallocSource()
            source.notes.insert(
                0, f"The heap reading is not available here ({exc}): tracemalloc measured instead."
            )
            return source
    return TracemallocSource() if backend == "tracemalloc" else RSSSource()
