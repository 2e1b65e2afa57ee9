"""The "heap" reading: bytes in use in the C allocator, with Python's objects sent to it.

Why: RSS does not move when the allocator reuses memory freed by the previous request
(a line that builds 20,000 model instances showed +11.5, +2.1, +1.0, 0.0 MiB on reloads),
and tracemalloc costs x3-x8 on allocation-heavy views. glibc's ``mallinfo2()`` counts
bytes in use (``uordblks``, plus ``hblkhd`` for mmapped blocks) whoever freed what
before, in about 1 us; but Python's own small-object allocator (pymalloc) takes its
arenas with mmap, out of glibc's sight, and counting its blocks
(``sys.getallocatedblocks()``) walks every pool: 280 us on a 2 M-block heap.

So while a traced request runs, the object and mem domains allocate with the raw
allocator (glibc ``malloc``): ``PyMem_SetAllocator`` with the raw domain's
malloc/calloc and pymalloc's own realloc/free. pymalloc's free and realloc hand any
pointer outside its arenas to the raw allocator (that is how objects over 512 bytes
are freed every day), so objects made before, during and after the switch are freed by
the allocator that made them. Measured: the demo's memory page x1.06-x1.09, a line
building 20,000 objects x1.23-x1.34 (malloc is slower than pymalloc for small objects),
and the same figure to the byte on every run.

The switch is made only when the current allocators are pymalloc's own (no debug hooks,
no tracemalloc: those wrap the allocator and must see their own blocks freed), on a
build with the GIL, and undone when the last traced request ends, unless another tool
replaced the allocator meanwhile (then it is left alone: both stay correct).
"""

from __future__ import annotations

import ctypes
import re
import sys
import sysconfig
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

_RAW, _MEM, _OBJ = 0, 1, 2


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in [
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        ]
    ]


class _Allocator(ctypes.Structure):
    """``PyMemAllocatorEx``: a context and four C function pointers (copied, never called)."""

    _fields_ = [(name, ctypes.c_void_p) for name in ("ctx", "malloc", "calloc", "realloc", "free")]

    def key(self) -> tuple[int | None, ...]:
        return (self.ctx, self.malloc, self.calloc, self.realloc, self.free)


def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    """glibc's ``mallinfo2``, or None where there is none (not glibc, or glibc < 2.33)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.PyDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    fn.argtypes = []
    return fn


def _reader(fn: Callable[[], _MallInfo2] | None) -> Callable[[], int] | None:
    if fn is None:
        return None

    def read() -> int:
        info = fn()
        mmapped = LAST_MMAPPED[0] = info.hblkhd
        return int(info.uordblks + mmapped)

    return read


#: ``hblkhd`` of the last reading: bytes in blocks glibc mmapped one by one (big blocks,
#: in no arena): kept by each reading, so an interval's big blocks are known for free
LAST_MMAPPED = [0]


_mallinfo = _mallinfo2()
_read = _reader(_mallinfo)
_lock = threading.Lock()
_users = 0
_saved: tuple[_Allocator, _Allocator] | None = None
_switched: _Allocator | None = None


def _get(domain: int) -> _Allocator:
    alloc = _Allocator()
    get = ctypes.pythonapi.PyMem_GetAllocator
    get.argtypes = [ctypes.c_int, ctypes.POINTER(_Allocator)]
    get.restype = None
    get(domain, ctypes.byref(alloc))
    return alloc


def _set(domain: int, alloc: _Allocator) -> None:
    put = ctypes.pythonapi.PyMem_SetAllocator
    put.argtypes = [ctypes.c_int, ctypes.POINTER(_Allocator)]
    put.restype = None
    put(domain, ctypes.byref(alloc))


def why_unavailable() -> str | None:
    """Why the heap reading cannot run in this process, or None when it can."""
    if _read is None:
        return "glibc's mallinfo2() is not available (not Linux with glibc 2.33+)"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "this is a free-threaded Python build (its allocator is mimalloc)"
    if _users:
        return None
    if tracemalloc.is_tracing():
        return "tracemalloc is running (it wraps the allocator)"
    raw, mem, obj = _get(_RAW), _get(_MEM), _get(_OBJ)
    if mem.key() == obj.key() == raw.key():
        return None  # PYTHONMALLOC=malloc: every object is malloc'd already
    if mem.key() != obj.key() or mem.ctx is not None:
        return "the allocator is wrapped (PYTHONMALLOC=debug, -X dev or another hook)"
    return None


def acquire() -> Callable[[], int]:
    """Send objects to malloc (first user) and return the reader of bytes in use.

    Raises RuntimeError with :func:`why_unavailable`'s reason when it cannot.
    """
    global _users, _saved, _switched
    with _lock:
        problem = why_unavailable()
        if problem is not None:
            raise RuntimeError(problem)
        assert _read is not None
        if _users == 0:
            raw, mem, obj = _get(_RAW), _get(_MEM), _get(_OBJ)
            if mem.key() != raw.key():
                switched = _Allocator(None, raw.malloc, raw.calloc, obj.realloc, obj.free)
                _set(_MEM, switched)
                _set(_OBJ, switched)
                _saved, _switched = (mem, obj), switched
        _users += 1
    return _read


def release() -> None:
    """One user fewer; the last one gives the object and mem domains back to pymalloc."""
    global _users, _saved, _switched
    with _lock:
        _users -= 1
        if _users > 0 or _saved is None or _switched is None:
            return
        mem, obj = _saved
        ours = _switched.key()
        if _get(_MEM).key() == ours and _get(_OBJ).key() == ours:
            _set(_MEM, mem)
            _set(_OBJ, obj)
        _saved = _switched = None


def read_cost_ns() -> int:
    """The fastest of three readings, in ns: ``mallinfo2`` walks every free block."""
    assert _read is not None
    best = 1 << 62
    for _ in range(3):
        start = time.perf_counter_ns()
        _read()
        best = min(best, time.perf_counter_ns() - start)
    return best


def switched() -> bool:
    """Python's objects go to malloc right now (a traced request is running)."""
    return _switched is not None


# -- which thread allocated: glibc's arenas ------------------------------------------------
# glibc gives each thread an arena of its own (up to 8 per core), so bytes in use per arena
# tell the request's thread from the others; ``malloc_info()`` reports them (13 us: read only
# when the CPU clocks say another thread ran). Blocks above the mmap threshold belong to no
# arena: their owner cannot be told.

_HEAP = re.compile(
    rb'<heap nr="(\d+)">.*?<total type="fast" count="\d+" size="(\d+)"/>\s*'
    rb'<total type="rest" count="\d+" size="(\d+)"/>\s*<system type="current" size="(\d+)"/>',
    re.S,
)


def _libc() -> Any:
    libc = ctypes.PyDLL(None)
    libc.open_memstream.restype = ctypes.c_void_p
    libc.open_memstream.argtypes = [
        ctypes.POINTER(ctypes.c_char_p),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.malloc_info.restype = ctypes.c_int
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free.restype = None
    return libc


def arenas() -> dict[int, int] | None:
    """Bytes in use per glibc arena (``malloc_info``), or None where it cannot be read."""
    try:
        libc = _libc()
        buf, size = ctypes.c_char_p(), ctypes.c_size_t()
        stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
        if not stream:
            return None
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        text = ctypes.string_at(buf, size.value)
        libc.free(buf)
    except (OSError, AttributeError):
        return None
    return {int(m[1]): int(m[4]) - int(m[2]) - int(m[3]) for m in _HEAP.finditer(text)}


def own_arena() -> int | None:
    """The arena of the calling thread: the one a 64 KiB malloc made here grows."""
    before = arenas()
    if before is None:
        return None
    libc = _libc()
    probe = libc.malloc(PROBE)
    after = arenas() or {}
    libc.free(probe)
    grown = [nr for nr, used in after.items() if used - before.get(nr, 0) >= PROBE]
    return grown[0] if len(grown) == 1 else None


#: the probe's size: under glibc's smallest mmap threshold (128 KiB), so it is arena memory
PROBE = 64 << 10
