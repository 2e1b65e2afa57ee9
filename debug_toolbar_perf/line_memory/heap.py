"""The "heap" reading: bytes allocated and kept, counted as they are handed out.

Why: RSS does not move when the allocator reuses memory freed by the previous request
(a line that builds 20,000 model instances showed +11.5, +2.1, +1.0, 0.0 MiB on reloads),
tracemalloc costs x3-x8 on allocation-heavy views, ``sys.getallocatedblocks()`` walks
every pymalloc pool (280 us on a 2 M-block heap), and glibc's ``mallinfo2()`` walks every
free block (1 us in a fresh process, 6-8 ms after 32 demo requests: the first version of
this reading, measured in the benchmark at x57 on the hot-loop page).

So the package ships a small C counting allocator (``_heapcount.c``, built at install and
optional): while a traced request runs, the raw domain is glibc's malloc wrapped to add
each block's usable size to a process-wide counter and to the calling thread's own, and
the object and mem domains allocate with it instead of pymalloc (whose arenas glibc does
not see); pymalloc's own realloc and free stay, and hand any block outside its arenas to
the raw domain. A reading is one C call (0.1 us), the same whatever the heap's history;
the calling thread's counter tells what other threads kept (``others()``).

The switch is made only when the current allocators are the default ones (no debug hooks,
no tracemalloc: those wrap the allocator and must see their own blocks freed), on a build
with the GIL, and undone when the last traced request ends, unless another tool replaced
the allocator meanwhile (then it is left alone: both stay correct).
"""

from __future__ import annotations

import ctypes
import os
import sysconfig
import threading
import tracemalloc
from collections.abc import Callable
from types import ModuleType

_RAW, _MEM, _OBJ = 0, 1, 2


def _load() -> ModuleType | None:
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return None  # importing a single-phase C module would switch the GIL back on
    try:
        from . import _heapcount
    except ImportError:
        return None
    return _heapcount


_counter = _load()


class _Allocator(ctypes.Structure):
    """``PyMemAllocatorEx``: a context and four C function pointers (compared, never called)."""

    _fields_ = [(name, ctypes.c_void_p) for name in ("ctx", "malloc", "calloc", "realloc", "free")]

    def key(self) -> tuple[int | None, ...]:
        return (self.ctx, self.malloc, self.calloc, self.realloc, self.free)


_lock = threading.Lock()
_users = 0
_ours = False


def _get(domain: int) -> _Allocator:
    alloc = _Allocator()
    get = ctypes.pythonapi.PyMem_GetAllocator
    get.argtypes = [ctypes.c_int, ctypes.POINTER(_Allocator)]
    get.restype = None
    get(domain, ctypes.byref(alloc))
    return alloc


def why_unavailable() -> str | None:
    """Why the heap reading cannot run in this process, or None when it can."""
    if _counter is None:
        return "its C counting allocator was not built when the package was installed"
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "this is a free-threaded Python build (its allocator is mimalloc)"
    if _users:
        return None
    if tracemalloc.is_tracing():
        return "tracemalloc is running (it wraps the allocator)"
    if os.environ.get("PYTHONMALLOC", "pymalloc") not in ("", "default", "pymalloc", "malloc"):
        return f"PYTHONMALLOC={os.environ['PYTHONMALLOC']} replaces the allocator"
    raw, mem, obj = _get(_RAW), _get(_MEM), _get(_OBJ)
    if raw.ctx is not None or mem.ctx is not None or mem.key() != obj.key():
        return "the allocator is wrapped (PYTHONMALLOC=debug, -X dev or another hook)"
    return None


def acquire() -> Callable[[], int]:
    """Start counting (first user) and return the reader of bytes in use, process-wide.

    Raises RuntimeError with :func:`why_unavailable`'s reason when it cannot.
    """
    global _users, _ours
    with _lock:
        problem = why_unavailable()
        if problem is not None:
            raise RuntimeError(problem)
        assert _counter is not None
        if _users == 0:
            # installed() alone: a tool that wrapped ours when we last gave them back
            # (tracemalloc) has since put ours back: they are still counting.
            if not (_counter.install() or _counter.installed()):
                raise RuntimeError(
                    "the allocator is not CPython's own, or another interpreter runs"
                )
            _ours = True
        _users += 1
    return _counter.total


def release() -> None:
    """One user fewer; the last one gives the allocators back."""
    global _users, _ours
    with _lock:
        _users -= 1
        if _users > 0 or not _ours:
            return
        assert _counter is not None
        _counter.uninstall()  # False: another tool wrapped ours meanwhile; left alone
        _ours = False


def switched() -> bool:
    """Python's objects are counted right now (a traced request is running)."""
    return _counter is not None and bool(_counter.installed())


def others() -> int:
    """Bytes in use counted for every thread but the calling one (O(1)): what changes
    here between two readings was allocated or freed by other threads."""
    assert _counter is not None
    return int(_counter.total() - _counter.own())
