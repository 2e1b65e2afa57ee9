"""What the session and its two tracers share: the request's session, slots and limits."""

from __future__ import annotations

import inspect
import sys
from typing import TYPE_CHECKING

from ..context import RequestLocal

if TYPE_CHECKING:
    from .session import LineMemorySession

MIB = 1 << 20
#: Pseudo line number: memory measured at function exit after the event cap.
CAP_LINE = 0
#: Another thread used more CPU than this during an interval: flag it (the two
#: CPU clocks disagree by up to ~0.1 ms even with one thread, measured).
OTHER_CPU_NS = 200_000
#: Heap reading: other threads must have kept this much, and this share of the interval's
#: change, for their part to be kept apart (a thread's working memory comes and goes: an
#: idle server thread waking up, the autoreloader stat-ing files).
OTHERS_MIN_BYTES = 64 << 10
OTHERS_MIN_SHARE = 0.10
#: Lines without a memory change after which the 'did others run?' window restarts (2**k-1).
WINDOW_MASK = 15
#: Changes charged together, on one reading of the CPU clocks (RSS). The heap reading settles
#: each change at once, so that other threads' part of an interval is known per line. Under
#: tracemalloc nearly every line changes memory and the deferring's own list growth is traced:
#: measured slower there (7.2 against 6.3 us per line on 3.11), so each change is settled at once.
PENDING_CHANGES = {"rss": 4, "heap": 1, "tracemalloc": 1}
TOOL_NAME = "debug_toolbar_perf"
#: Threads of this package whose CPU is not "another thread" for the isolation check: the
#: sampling profiler's thread runs all through the request and allocates little.
OWN_THREADS = ("debug-toolbar-perf-sampler",)
#: sys.monitoring tool ids we may take: the unassigned ones (and the optimizer's), never
#: the debugger's (0), coverage's (1) or the profiler's (2: cProfile, the toolbar's
#: ProfilingPanel), so those tools can still start while a request is traced.
TOOL_IDS = (4, 3, 5)
MONITORING = sys.version_info >= (3, 12)

#: The session measuring the current request. A ContextVar, so hooks follow the request
#: into the thread asgiref runs a sync view in and into the awaited async view, and
#: ignore every other request (each task and each WSGI thread has its own context).
CURRENT: RequestLocal[LineMemorySession] = RequestLocal("debug_toolbar_perf.line_memory")
_current = CURRENT.var.get

# frame-state slots (a list per active traced frame, kept on a stack). _OUTER: no traced
# frame was open beneath it, so its lines' changes are the request's traced total once
# (a traced caller's line already includes what its traced callees' lines changed).
_CODE, _LINES, _LINE, _MEM, _DEPTH, _FRAME, _OUTER = range(7)
# per-line record slots
_INC, _OCC, _LAST, _SHARED, _NSHARED = range(5)
#: Code that can suspend: its frames yield and resume (generators, coroutines).
_SUSPENDS = (
    inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
)


class TracingUnavailable(Exception):
    """Tracing could not start without disturbing another tool; the message says why."""
