"""Line-by-line memory of the view's own code, for one request.

The model and table are memory_profiler's (``Line #``, ``Mem usage``,
``Increment``, ``Occurrences``, ``Line Contents``), and functions users already
decorated with its ``@profile`` are honoured. What we replace, and why:

* memory_profiler puts a tracer on *every* frame (x10-x27 on a view that renders
  a template). We trace only the target code objects: on Python 3.12+ with
  ``sys.monitoring`` local events on those code objects alone (code they call
  runs at full speed); on 3.10/3.11 with a ``sys.settrace`` function that
  declines every other frame.
* Hooks follow the *request*, not a thread: every callback checks the request's
  ContextVar (:data:`CURRENT`). Under WSGI that is the request's thread; under ASGI
  a sync view runs in an asgiref executor thread (asgiref copies the context there)
  and an async view runs in the event-loop thread between other requests' tasks.
* A coroutine's line is charged up to the moment it suspends (``await`` parks the
  task) and again from when it resumes. What changed while it was parked is kept
  apart when anything else ran meanwhile (other tasks, other threads).
* memory_profiler builds a new ``psutil.Process`` per line (17-33 us). We read
  ``/proc/self/statm`` with ``os.pread`` (0.7 us) and fall back to one cached
  ``psutil.Process`` elsewhere.
* memory_profiler's increment diffs against the maximum seen, so a line that
  allocates inside a loop shows 0.0 MiB. We charge each line the *net* change
  between its line event and the next event of the same frame, summed over its
  executions (frees show as negative numbers).
* memory_profiler's tracemalloc backend takes a full snapshot per line (~1 ms);
  we read ``tracemalloc.get_traced_memory()`` (2-3 us).

Memory is process-wide (RSS and tracemalloc alike). A change measured across one
interval of this request can include another thread's allocations only if another
thread ran during it. A change is charged once the process and thread CPU clocks have
been read (1.3 us: never on lines where nothing changed; with RSS once per 4 changes and
at entry, return, resume and after 16 unchanged events); if other threads used more than
0.2 ms of CPU since the clocks were last read, every change of that window is kept apart
("others ran") instead of being added to the line's increment. Amounts in the
Increment column were measured while nothing else ran.
Limit: an allocation by another thread that costs it under 0.2 ms of CPU (e.g. a
large calloc'd block under tracemalloc) is not detected.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import inspect
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from types import CodeType, FunctionType
from typing import Any

from ..context import RequestLocal
from ..records import error_record
from ..scope import unwrap_function

MIB = 1 << 20
#: Pseudo line number: memory measured at function exit after the event cap.
CAP_LINE = 0
#: Another thread used more CPU than this during an interval: flag it (the two
#: CPU clocks disagree by up to ~0.1 ms even with one thread, measured).
OTHER_CPU_NS = 200_000
#: Lines without a memory change after which the 'did others run?' window restarts (2**k-1).
WINDOW_MASK = 15
#: Changes charged together, on one reading of the CPU clocks (RSS). Under tracemalloc
#: nearly every line changes memory and the deferring's own list growth is traced: measured
#: slower there (7.2 against 6.3 us per line on 3.11), so each change is settled at once.
PENDING_CHANGES = {"rss": 4, "tracemalloc": 1}
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

# frame-state slots (a list per active traced frame, kept on a stack)
_CODE, _LINES, _LINE, _MEM, _DEPTH, _FRAME = range(6)
# per-line record slots
_INC, _OCC, _LAST, _SHARED, _NSHARED = range(5)
#: Code that can suspend: its frames yield and resume (generators, coroutines).
_SUSPENDS = (
    inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
)

# -- the decorator ---------------------------------------------------------------

_decorated: dict[CodeType, str] = {}


def profile_memory(func: Any) -> Any:
    """Mark ``func`` for the LineMemoryPanel; returns it unchanged (no cost when off)."""
    plain = unwrap_function(func)
    code = getattr(plain, "__code__", None)
    if isinstance(code, CodeType):
        _decorated[code] = _label(plain)
    return func


def _label(func: Any) -> str:
    module = getattr(func, "__module__", None) or "?"
    return f"{module}.{getattr(func, '__qualname__', getattr(func, '__name__', '?'))}"


# -- memory_profiler's @profile ----------------------------------------------------

#: module id -> (module, number of names when scanned, @profile'd codes found in it)
_mp_cache: dict[int, tuple[Any, int, dict[CodeType, str]]] = {}


def _is_mp_wrapper(obj: Any, mp_file: str) -> bool:
    code = getattr(obj, "__code__", None)
    return (
        isinstance(obj, FunctionType)
        and isinstance(code, CodeType)
        and code.co_name == "wrapper"
        and os.path.realpath(code.co_filename) == mp_file
    )


def _scan_module(module: Any, mp_file: str) -> dict[CodeType, str]:
    found: dict[CodeType, str] = {}
    for obj in list(vars(module).values()):
        candidates = [obj]
        if isinstance(obj, type) and obj.__module__ == module.__name__:
            candidates = list(vars(obj).values())
        for cand in candidates:
            cand = cand.__func__ if isinstance(cand, (staticmethod, classmethod)) else cand
            if _is_mp_wrapper(cand, mp_file):
                plain = unwrap_function(cand)
                code = getattr(plain, "__code__", None)
                if isinstance(code, CodeType) and os.path.realpath(code.co_filename) != mp_file:
                    found[code] = _label(plain)
    return found


def memory_profiler_functions(is_project: Callable[[str], bool]) -> dict[CodeType, str]:
    """Code of project functions decorated with memory_profiler's ``@profile``.

    Its ``profile`` returns a ``functools.wraps`` wrapper, so ``__wrapped__`` leads to
    the original function. Each project module is scanned again only when its number
    of names changes (a dict lookup per module on later requests).
    """
    mp = sys.modules.get("memory_profiler")
    if mp is None or not getattr(mp, "__file__", None):
        return {}
    mp_file = os.path.realpath(mp.__file__)
    found: dict[CodeType, str] = {}
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if not filename or not is_project(filename):
            continue
        size = len(vars(module))
        cached = _mp_cache.get(id(module))
        if cached is None or cached[0] is not module or cached[1] != size:
            cached = _mp_cache[id(module)] = (module, size, _scan_module(module, mp_file))
        found.update(cached[2])
    return found


# -- memory sources ------------------------------------------------------------------

_tm_lock = threading.Lock()
_tm_users = 0
_tm_ours = False


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
            fd = os.open("/proc/self/statm", os.O_RDONLY)
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
            self.how = "/proc/self/statm"
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


def make_source(backend: str) -> MemorySource:
    return TracemallocSource() if backend == "tracemalloc" else RSSSource()


# -- the session -----------------------------------------------------------------------


class TracingUnavailable(Exception):
    """Tracing could not start without disturbing another tool; the message says why."""


class LineMemorySession:
    """One request's line-by-line measurement of a set of code objects."""

    def __init__(
        self,
        targets: dict[CodeType, tuple[str, str]],
        *,
        backend: str = "rss",
        max_events: int = 10_000,
        follow_depth: int = 0,
        is_project: Callable[[str], bool] = lambda f: False,
    ) -> None:
        #: code -> (label, why it is traced)
        self.targets = dict(targets)
        self.depths: dict[CodeType, int] = {c: 0 for c in targets}
        self.backend = backend
        self.max_events = max_events
        self.follow_depth = follow_depth
        self.is_project = is_project
        self.lines: dict[CodeType, dict[int, list[int]]] = {}
        self.calls: dict[CodeType, int] = {}
        self.stack: list[list[Any]] = []
        #: id(frame) -> (state, process CPU, own threads' CPU) of suspended frames
        self.suspended: dict[int, tuple[list[Any], int, int]] = {}
        self.events = 0
        self.capped = False
        self.capped_calls = 0
        #: "return": after the cap each function is measured at its return; "end": tracing
        #: stopped at the cap (3.10/3.11) and the rest is measured when the request ends.
        self.cap_mode = "return"
        #: how many times a traced coroutine was parked and resumed, and how many of those
        #: parked intervals saw other code run (their change is kept apart)
        self.suspensions = 0
        self.suspensions_shared = 0
        self.notes: list[str] = []
        self.problem: str | None = None
        #: error records of faults inside the tracer or at stop (the panel shows them)
        self.errors: list[dict[str, Any]] = []
        self.engine = ""
        self.source: MemorySource | None = None
        self.start_mem = self.end_mem = self.peak = 0
        self.shared_intervals = 0
        self.wall_ns = 0
        self.peak_exact = False
        self.own_threads: list[str] = []
        self._own_clocks: list[list[int]] = []
        self._x0 = 0
        #: changes measured but not yet charged: [record, change, record, change, ...].
        #: The CPU clocks that tell whether other threads ran are read once per
        #: ``PENDING_CHANGES`` changes (see ``_make_on_line``), which then share one verdict.
        self._pending: list[Any] = []
        self._tracer: Any = None
        self._token: Any = None
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self, *, here: bool = True) -> LineMemorySession:
        """Start measuring the current context's request.

        ``here=False`` (3.10/3.11 only): do not trace this thread; the caller will call
        :meth:`attach_thread` from the thread that runs the view (``sys.settrace`` only
        reaches the thread that calls it).
        """
        self.source = make_source(self.backend)
        self.notes.extend(self.source.notes)
        self._read = self.source.read
        self._find_own_threads()
        self._on_line = self._make_on_line()
        tracer = _MonitoringTracer(self) if MONITORING else _SettraceTracer(self)
        self._p0, self._t0 = time.process_time_ns(), time.thread_time_ns()
        self._x0 = self._own_cpu()
        self.start_mem = self.peak = self._read()
        self._started_ns = time.perf_counter_ns()
        self._token = CURRENT.var.set(self)
        self._tracer = tracer  # set first: a fault in a callback must be able to stop it
        try:
            tracer.start(here)
        except TracingUnavailable as exc:
            self._tracer = None
            self.problem = str(exc)
            return self
        self.engine = tracer.describe()
        return self

    def attach_thread(self) -> None:
        """Also trace the calling thread (3.10/3.11; a no-op with sys.monitoring).

        Under ASGI a sync view runs in asgiref's executor thread: the panel calls this
        there (``sync_to_async(thread_sensitive=True)`` reaches the same thread) before
        the view, and :meth:`detach_thread` after it.
        """
        tracer = self._tracer
        if tracer is None or self._stopped:
            return
        try:
            tracer.attach()
        except TracingUnavailable as exc:
            self.notes.append(str(exc))

    def detach_thread(self) -> None:
        if self._tracer is not None:
            self._tracer.detach()

    def trace_new_threads(self) -> None:
        """Also trace threads started from now until :meth:`stop` (3.10/3.11; else a no-op).

        For an async view under WSGI: ``async_to_sync`` runs it in a new thread.
        """
        tracer = self._tracer
        if tracer is not None and not self._stopped and not MONITORING:
            tracer.arm_new_threads()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            if self._tracer is not None:
                self._tracer.stop()
        finally:
            self._unbind()
            source = self.source
            if source is not None:
                try:
                    self._finish(source)
                except Exception as exc:  # the panel shows it; the view's response is done
                    self.errors.append(error_record("stop", exc))
                finally:
                    source.close()
            self.wall_ns = time.perf_counter_ns() - self._started_ns

    def _unbind(self) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        with contextlib.suppress(ValueError, RuntimeError):  # stopped in another context
            CURRENT.var.reset(token)

    def _finish(self, source: MemorySource) -> None:
        """Last reading: close frames left open and settle the peak."""
        m = self.end_mem = source.read()
        while self.stack:  # frames still open (untraced at the cap, or a fault): close them
            self._close(self.stack.pop(), m)
        self._settle()
        self.suspended.clear()
        if m > self.peak:
            self.peak = m
        exact = source.peak()
        self.peak_exact = exact is not None
        if exact is not None and exact > self.peak:
            self.peak = exact

    def fail(self, exc: BaseException) -> None:
        """A trace callback raised: stop tracing now and keep the error for the panel.

        Called from inside the tracer, so it must not raise: an exception there would
        surface in the user's view. What was measured before the fault is incomplete, so
        the panel shows the error instead of a table (see ``LineMemoryPanel.build_record``).
        """
        try:
            self.errors.append(error_record("trace", exc))
            if self._tracer is not None:
                self._tracer.abort()
            self.stack.clear()  # open frames' last intervals were not measured
            self.suspended.clear()
        except Exception:  # nothing may escape into the traced code
            pass

    # -- accounting (called from the tracers) ------------------------------------------------

    def _find_own_threads(self) -> None:
        getclock = getattr(time, "pthread_getcpuclockid", None)
        if getclock is None:
            return
        for thread in threading.enumerate():
            if thread.name in OWN_THREADS and thread.ident and thread.is_alive():
                try:
                    clock = getclock(thread.ident)
                    self._own_clocks.append([clock, time.clock_gettime_ns(clock)])
                except OSError:
                    continue
                self.own_threads.append(thread.name)

    def _own_cpu(self) -> int:
        """CPU used so far by this package's own threads (their clocks, last known values)."""
        total = 0
        for entry in self._own_clocks:
            with contextlib.suppress(OSError):  # the thread ended: keep its last value
                entry[1] = time.clock_gettime_ns(entry[0])
            total += entry[1]
        return total

    def _settle(self) -> bool:
        """Did other threads use CPU in the window (since the clocks were last read)?

        Charges the changes deferred in that window by the verdict, and starts a new one.
        """
        p, t = time.process_time_ns(), time.thread_time_ns()
        x = self._own_cpu() if self._own_clocks else 0
        others = (p - self._p0) - (t - self._t0) - (x - self._x0) > OTHER_CPU_NS
        self._p0, self._t0, self._x0 = p, t, x
        pending = self._pending
        if pending:
            for i in range(0, len(pending), 2):
                self._charge(pending[i], pending[i + 1], others)
            pending.clear()
        return others

    def _charge(self, rec: list[int], d: int, others: bool) -> None:
        if not d:
            return
        if others:
            rec[_SHARED] += d
            rec[_NSHARED] += 1
            self.shared_intervals += 1
        else:
            rec[_INC] += d

    def _close(self, st: list[Any], m: int) -> None:
        """Charge frame-state ``st``'s current line the net change since it began."""
        rec = st[_LINES].get(st[_LINE])
        if rec is None:
            rec = st[_LINES][st[_LINE]] = [0, 0, 0, 0, 0]
        self._charge(rec, m - st[_MEM], self._settle())
        rec[_LAST] = m
        st[_MEM] = m
        if m > self.peak:
            self.peak = m

    def enter(self, code: CodeType, frame: Any = None) -> list[Any]:
        """A target frame starts: push its state (memory now, on its ``def`` line)."""
        lines = self.lines.get(code)
        if lines is None:
            lines = self.lines[code] = {}
        self.calls[code] = self.calls.get(code, 0) + 1
        self._settle()  # the caller's deferred changes, then a window for this frame
        m = self._read()
        if m > self.peak:
            self.peak = m
        line = CAP_LINE if self.capped else code.co_firstlineno
        rec = lines.get(line)
        if rec is None:
            rec = lines[line] = [0, 0, m, 0, 0]
        rec[_OCC] += 1
        if self.capped:
            self.capped_calls += 1
        st = [code, lines, line, m, self.depths.get(code, 0), frame]
        self.stack.append(st)
        return st

    def suspend(self, st: list[Any], key: int) -> None:
        """A generator or coroutine frame yields: charge its line so far and park its state.

        ``key`` is ``id(frame)``: the frame object itself is not kept, since holding a
        finished generator's frame would keep its locals alive (and in the figures).
        """
        self._close(st, self._read())  # also settles the CPU window (_p0, _x0)
        st[_FRAME] = None
        self.suspended[key] = (st, self._p0, self._x0)

    def resume(self, key: int, code: CodeType, frame: Any = None) -> None:
        """A suspended frame resumes: its line goes on being charged from now.

        A coroutine was parked by the event loop: what changed meanwhile is its await's
        doing (work it waited for: a thread pool, I/O) or other tasks'. It goes to the
        line when nothing else used CPU while it was parked, else it is kept apart. A
        generator was paused by its consumer, whose own line is charged for that time.
        """
        entry = self.suspended.pop(key, None)
        if entry is None or entry[0][_CODE] is not code:
            self.enter(code, frame)  # started before tracing began: a fresh state
            return
        st, p_parked, x_parked = entry
        self._settle()  # what ran before this resumed (its consumer's lines), and a new window
        p, x = self._p0, self._x0
        m = self._read()
        if code.co_flags & inspect.CO_COROUTINE:
            self.suspensions += 1
            rec = st[_LINES].get(st[_LINE])
            if rec is None:
                rec = st[_LINES][st[_LINE]] = [0, 0, m, 0, 0]
            # Our task ran nothing while parked: all CPU used meanwhile was someone else's
            # (this thread's other tasks included), or work done for us in another thread.
            others = (p - p_parked) - (x - x_parked) > OTHER_CPU_NS
            if others and m != st[_MEM]:
                self.suspensions_shared += 1
            self._charge(rec, m - st[_MEM], others)
            rec[_LAST] = m
        if m > self.peak:
            self.peak = m
        st[_MEM] = m
        st[_FRAME] = frame
        self.stack.append(st)

    def line(self, st: list[Any], lineno: int) -> None:
        """A new line starts in frame-state ``st`` (the top of the stack)."""
        self._on_line(st, lineno)

    def _make_on_line(self) -> Callable[[list[Any], int], None]:
        """The per-line hot path as one closure (locals, no method calls: ~2x faster).

        Invariant it relies on: a frame state's memory (``st[_MEM]``) never exceeds
        ``self.peak`` (every other place that sets it updates the peak), so the peak is
        only checked when memory grew.
        """
        session = self
        raw_read = self.source.raw
        value = self.source.value
        pending = self._pending
        slots = 2 * PENDING_CHANGES.get(self.backend, 1)
        settle = self._settle
        max_events = self.max_events
        last_raw: Any = None
        last_m = 0

        def on_line(st: list[Any], lineno: int) -> None:
            nonlocal last_raw, last_m
            n = session.events = session.events + 1
            if n > max_events:
                session.cap()
                return
            raw = raw_read()
            if raw == last_raw:  # unchanged since the last line: skip the parse
                m = last_m
            else:
                m = last_m = value(raw)
                last_raw = raw
            lines = st[1]
            rec = lines[st[2]]
            d = m - st[3]
            if d:
                # Charged once the clocks tell whether another thread used CPU meanwhile:
                # with RSS they are read once per 4 changes (1.3 us saved on most changed
                # lines) and at the window's restart, so one verdict covers a few
                # intervals. It can only flag more, never less.
                pending.append(rec)
                pending.append(d)
                if len(pending) >= slots:
                    settle()
                st[3] = m
                if m > session.peak:
                    session.peak = m
            elif not n & WINDOW_MASK:
                # Nothing changed for a while: settle what is pending and start the window
                # afresh, so CPU other threads used long before a change is not held
                # against it.
                settle()
            rec[2] = m
            st[2] = lineno
            rec = lines.get(lineno)
            if rec is None:
                lines[lineno] = [0, 1, m, 0, 0]
            else:
                rec[1] += 1

        return on_line

    def leave(self, st: list[Any]) -> None:
        self._close(st, self._read())

    def cap(self) -> None:
        """Too many line events: stop per-line reads; the rest is measured at return."""
        if self.capped:
            return
        self.capped = True
        m = self._read()
        for st in self.stack:
            self._close(st, m)
            st[_LINE] = CAP_LINE
            st[_MEM] = m
            st[_LINES].setdefault(CAP_LINE, [0, 0, m, 0, 0])
        for st, _p, _x in self.suspended.values():
            st[_LINE] = CAP_LINE
            st[_LINES].setdefault(CAP_LINE, [0, 0, m, 0, 0])
        if self._tracer is not None:
            self._tracer.lines_off()

    def add_target(self, code: CodeType, depth: int, why: str) -> None:
        if code in self.targets:
            return
        self.targets[code] = (f"{code.co_name} ({os.path.basename(code.co_filename)})", why)
        self.depths[code] = depth
        if self._tracer is not None:
            self._tracer.instrument(code)


# -- Python 3.12+: sys.monitoring --------------------------------------------------------


class _MonitoringTracer:
    """Local LINE/PY_START/PY_RETURN/PY_YIELD/PY_RESUME events on the targets only.

    ``PY_UNWIND`` and ``PY_THROW`` cannot be local: they are set for the tool and fire
    only when a frame unwinds or an exception is thrown into a suspended frame. Local
    events fire in every thread; each callback first checks that the current context
    is this session's request (:data:`CURRENT`).
    """

    def __init__(self, session: LineMemorySession) -> None:
        self.s = session
        self.tool: int | None = None
        self.instrumented: list[CodeType] = []
        self.line_events = True
        self._callbacks: list[tuple[int, Callable[..., Any]]] = []

    def describe(self) -> str:
        return f"sys.monitoring (tool id {self.tool})"

    def _claim(self) -> int:
        mon = sys.monitoring
        for tool in TOOL_IDS:
            if mon.get_tool(tool) is None:
                try:
                    mon.use_tool_id(tool, TOOL_NAME)
                except ValueError:  # taken between the check and the claim
                    continue
                return tool
        holders = ", ".join(f"{i}: {mon.get_tool(i)}" for i in range(6))
        raise TracingUnavailable(
            "Every sys.monitoring tool id is in use (" + holders + "), so line memory "
            "was not measured. Stop one of those tools (or a concurrent request using "
            "this panel) and reload."
        )

    def start(self, here: bool = True) -> None:
        mon = sys.monitoring
        ev = mon.events
        self.tool = tool = self._claim()
        # Kept referenced here: ``abort`` unregisters them from inside a running callback.
        self._callbacks = [
            (ev.PY_START, self._on_start),
            (ev.PY_RESUME, self._on_resume),
            (ev.PY_THROW, self._on_throw),
            (ev.LINE, self._line_callback()),
            (ev.PY_RETURN, self._on_return),
            (ev.PY_YIELD, self._on_yield),
            (ev.PY_UNWIND, self._on_unwind),
            (ev.CALL, self._on_call),
        ]
        try:
            for event, callback in self._callbacks:
                mon.register_callback(tool, event, callback)
            # These two cannot be local; they fire only on unwinding / throw().
            mon.set_events(tool, ev.PY_UNWIND | ev.PY_THROW)
            for code in self.s.targets:
                self.instrument(code)
        except BaseException:
            self.stop()
            raise

    def attach(self) -> None:
        """sys.monitoring already fires in every thread."""

    def detach(self) -> None:
        """Nothing was installed per thread."""

    def _events(self, code: CodeType) -> int:
        ev = sys.monitoring.events
        mask = ev.PY_START | ev.PY_RESUME | ev.PY_RETURN | ev.PY_YIELD
        if self.line_events:
            mask |= ev.LINE
        if self.s.follow_depth and self.s.depths.get(code, 0) < self.s.follow_depth:
            mask |= ev.CALL
        return mask

    def instrument(self, code: CodeType) -> None:
        if self.tool is None:
            return
        sys.monitoring.set_local_events(self.tool, code, self._events(code))
        self.instrumented.append(code)

    def lines_off(self) -> None:
        self.line_events = False
        for code in self.instrumented:
            sys.monitoring.set_local_events(self.tool, code, self._events(code))

    def abort(self) -> None:
        """Stop from inside a callback (after a fault): same as :meth:`stop`."""
        self.stop()

    def stop(self) -> None:
        mon = sys.monitoring
        tool = self.tool
        if tool is None:
            return
        self.tool = None
        try:
            mon.set_events(tool, 0)
            for code in self.instrumented:
                mon.set_local_events(tool, code, 0)
            for event, _callback in self._callbacks:
                mon.register_callback(tool, event, None)
        finally:
            mon.free_tool_id(tool)

    # callbacks: first filter to this request (its ContextVar) and to our frames. An
    # exception raised by a callback would surface in the traced (user's) code: each one
    # catches everything and hands it to ``session.fail``, which stops tracing.
    def _on_start(self, code: CodeType, offset: int) -> None:
        s = self.s
        if _current() is not s or code not in s.targets:
            return
        try:
            s.enter(code)
        except Exception as exc:
            s.fail(exc)

    def _on_resume(self, code: CodeType, offset: int) -> None:
        s = self.s
        if _current() is not s or code not in s.targets:
            return
        try:
            s.resume(id(sys._getframe(1)), code)  # the frame running ``code``
        except Exception as exc:
            s.fail(exc)

    def _on_throw(self, code: CodeType, offset: int, exc: BaseException) -> None:
        self._on_resume(code, offset)

    def _line_callback(self) -> Callable[[CodeType, int], None]:
        """The LINE callback, a closure: the hottest path, so no attribute lookups."""
        s = self.s
        stack = s.stack
        on_line = s._on_line
        fail = s.fail
        current = _current

        def on_line_event(code: CodeType, lineno: int) -> None:
            if current() is s and stack:
                st = stack[-1]
                if st[0] is code:
                    try:
                        on_line(st, lineno)
                    except Exception as exc:
                        fail(exc)

        return on_line_event

    def _on_return(self, code: CodeType, offset: int, value: Any) -> None:
        s = self.s
        if _current() is not s:
            return
        stack = s.stack
        if stack and stack[-1][_CODE] is code:
            try:
                s.leave(stack.pop())
            except Exception as exc:
                s.fail(exc)

    def _on_yield(self, code: CodeType, offset: int, value: Any) -> None:
        s = self.s
        if _current() is not s:
            return
        stack = s.stack
        if stack and stack[-1][_CODE] is code:
            try:
                s.suspend(stack.pop(), id(sys._getframe(1)))
            except Exception as exc:
                s.fail(exc)

    def _on_unwind(self, code: CodeType, offset: int, exc: BaseException) -> None:
        self._on_return(code, offset, None)

    def _on_call(self, code: CodeType, offset: int, func: Any, arg0: Any) -> None:
        s = self.s
        if _current() is not s or not s.stack:
            return
        try:
            depth = s.depths.get(code, 0)
            if depth >= s.follow_depth:
                return
            callee = getattr(func, "__func__", func)
            callee_code = getattr(callee, "__code__", None)
            if (
                isinstance(callee, FunctionType)
                and isinstance(callee_code, CodeType)
                and callee_code not in s.targets
                and s.is_project(callee_code.co_filename)
            ):
                s.add_target(callee_code, depth + 1, "followed")
        except Exception as exc:
            s.fail(exc)


# -- Python 3.10/3.11: sys.settrace ---------------------------------------------------------

#: Sessions tracing the current thread through :func:`_dispatch` (one trace function per
#: thread is shared: under ASGI several requests' coroutines run in the event-loop thread).
_thread_users = threading.local()
#: Sessions that need :func:`_dispatch` in threads started from now on (``threading.settrace``).
_armed = 0
_arm_lock = threading.Lock()


def _arm_new_threads() -> bool:
    """Give threads started from now on the trace function (3.10/3.11).

    Under WSGI Django runs an async view with ``async_to_sync``: the coroutine runs in an
    event loop in a *new* thread, which ``sys.settrace`` in the request's thread cannot
    reach. ``threading.settrace`` installs the dispatcher in every thread started while a
    session needs it; in threads of other requests it declines every frame. False if
    another tool (a debugger) set its own hook: that one is left alone.
    """
    global _armed
    with _arm_lock:
        if _armed == 0:
            current = threading.gettrace()
            if current is not None and current is not _dispatch:
                return False
            threading.settrace(_dispatch)
        _armed += 1
        return True


def _disarm_new_threads() -> None:
    global _armed
    with _arm_lock:
        _armed = max(_armed - 1, 0)
        if _armed == 0 and threading.gettrace() is _dispatch:
            threading.settrace(None)  # threads already started keep it until they end


def _dispatch(frame: Any, event: str, arg: Any) -> Any:
    """The thread's trace function: hands the event to the current request's session.

    Python calls it for every new frame ("call") in the thread, and for every event when
    memory_profiler's tracer chains to it. Frames of other requests (or of no request)
    are declined.
    """
    s = _current()
    if s is None:
        if not _armed and not getattr(_thread_users, "n", 0):
            # Installed by threading.settrace in a thread started during a request that has
            # ended (a server's pool thread): leave, or the thread stays slow for good.
            sys.settrace(None)
        return None
    tracer = s._tracer
    if tracer is None or not tracer.active:
        return None
    if event == "call" and not s.follow_depth and frame.f_code not in s.targets:
        return None  # the common case, without a second Python call
    return tracer.trace(frame, event, arg)


if MONITORING:

    def _resumed(frame: Any) -> bool:
        return False

    def _yielded(frame: Any) -> bool:
        return False

elif sys.version_info >= (3, 11):
    _RESUME, _YIELD_VALUE = dis.opmap["RESUME"], dis.opmap["YIELD_VALUE"]

    def _resumed(frame: Any) -> bool:
        """A "call" event of a frame that resumes (RESUME's argument is 0 only at start)."""
        code = frame.f_code.co_code
        return code[frame.f_lasti] == _RESUME and code[frame.f_lasti + 1] != 0

    def _yielded(frame: Any) -> bool:
        """A "return" event of a frame that suspends rather than returns."""
        return frame.f_code.co_code[frame.f_lasti] == _YIELD_VALUE

else:  # 3.10
    _YIELD_VALUE, _YIELD_FROM = dis.opmap["YIELD_VALUE"], dis.opmap["YIELD_FROM"]

    def _resumed(frame: Any) -> bool:
        return frame.f_lasti >= 0

    def _yielded(frame: Any) -> bool:
        # ``await``/``yield from`` leave f_lasti on the instruction before YIELD_FROM.
        code, i = frame.f_code.co_code, frame.f_lasti
        return code[i] == _YIELD_VALUE or (i + 2 < len(code) and code[i + 2] == _YIELD_FROM)


class _SettraceTracer:
    """A trace function per thread that declines every frame but the request's targets.

    ``sys.settrace`` reaches only the thread that calls it. The session starts it in the
    thread of ``start()``; under ASGI the panel also attaches the executor thread that
    runs a sync view (:meth:`LineMemorySession.attach_thread`).

    Any trace function puts the whole thread in tracing mode (every instruction checked,
    no specialisation on 3.11: x2-x3 on code the view calls). So at the cost cap, when no
    other request traces the thread, tracing is switched off altogether, not only the
    per-line events: the rest of the request runs at full speed.
    """

    def __init__(self, session: LineMemorySession) -> None:
        self.s = session
        self.active = False
        self.untraced = False
        self.threads: set[int] = set()
        self.armed = False
        self._local = self._make_local()

    def describe(self) -> str:
        return "sys.settrace (the request's thread)"

    def start(self, here: bool = True) -> None:
        self.active = True
        if here:
            try:
                self.attach()
            except TracingUnavailable:
                self.active = False
                raise

    def attach(self) -> None:
        """Trace the calling thread (the trace function is shared with other requests)."""
        ident = threading.get_ident()
        if not self.active or ident in self.threads:
            return
        current = sys.gettrace()
        users = getattr(_thread_users, "n", 0)
        if current is not _dispatch:
            if current is not None:
                raise TracingUnavailable(
                    f"Another trace function is active in this thread ({current!r}: "
                    "coverage, a debugger...). Line memory was not measured so that it "
                    "keeps working; on Python 3.12+ both can run at once."
                )
            users = 0
            sys.settrace(_dispatch)
        _thread_users.n = users + 1
        self.threads.add(ident)

    def detach(self) -> None:
        """Stop tracing the calling thread for this session (last one out uninstalls)."""
        ident = threading.get_ident()
        if ident not in self.threads:
            return
        self.threads.discard(ident)
        users = _thread_users.n = max(getattr(_thread_users, "n", 1) - 1, 0)
        if users:
            return
        current = sys.gettrace()
        if current is _dispatch:
            sys.settrace(None)
        elif current is not None:  # someone replaced us without restoring: leave theirs alone
            self.s.notes.append(f"Another tool replaced this panel's trace function ({current!r}).")

    def arm_new_threads(self) -> None:
        if not self.armed and self.active:
            self.armed = _arm_new_threads()
            if not self.armed:
                self.s.notes.append(
                    f"Another tool set a trace hook for new threads ({threading.gettrace()!r}); "
                    "code this request runs in a thread it starts (an async view under WSGI "
                    "runs in one) was not traced. Python 3.12+ traces it all the same."
                )

    def stop(self) -> None:
        self.active = False
        self.detach()
        if self.armed:
            self.armed = False
            _disarm_new_threads()

    def instrument(self, code: CodeType) -> None:
        """Nothing to do: the trace function sees every new frame."""

    def lines_off(self) -> None:
        """At the cap: leave tracing mode if only this request traces this thread."""
        ident = threading.get_ident()
        others_here = getattr(_thread_users, "n", 0) - (ident in self.threads)
        if others_here <= 0 and sys.gettrace() is _dispatch:
            sys.settrace(None)  # `detach` later finds no trace function: nothing to undo
            self.untraced = True
            self.s.cap_mode = "end"
            for st in self.s.stack:
                frame, st[_FRAME] = st[_FRAME], None  # held, it would keep the view's locals
                if frame is not None:
                    frame.f_trace = None
            return
        for st in self.s.stack:  # another request traces this thread too: lines only
            frame = st[_FRAME]
            if frame is not None:
                frame.f_trace_lines = False

    def abort(self) -> None:
        """Stop from inside the trace function (after a fault): untrace the open frames too.

        ``sys.settrace`` only affects new frames; frames already traced keep calling
        their ``f_trace``, so it is cleared on each (the caller clears the current one).
        """
        for st in self.s.stack:
            frame = st[_FRAME]
            if frame is not None:
                frame.f_trace = None
        self.stop()

    def _make_local(self) -> Callable[[Any, str, Any], None]:
        """The target frames' own trace function: line events take the short path.

        It returns None: for events other than "call" that leaves the frame's trace
        function as it is (itself, or None where the cap or a fault cleared it), and
        allocates nothing (``return self.trace`` builds a bound method per event).
        """
        s = self.s
        stack = s.stack
        on_line = s._on_line
        trace = self.trace

        def local(frame: Any, event: str, arg: Any) -> None:
            if event == "line":
                if stack:
                    st = stack[-1]
                    if st[5] is frame:
                        try:
                            on_line(st, frame.f_lineno)
                        except Exception as exc:  # it would surface in the user's code
                            s.fail(exc)
                            frame.f_trace = None
                return None
            trace(frame, event, arg)
            return None

        return local

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        """One function for every event, so memory_profiler's tracer can chain to it.

        Target frames get :meth:`_make_local`'s function as their own trace function.
        """
        s = self.s
        stack = s.stack
        try:
            if self.untraced or not self.active:
                return None
            if event == "line":
                if stack and stack[-1][5] is frame:
                    s._on_line(stack[-1], frame.f_lineno)
                    if self.untraced:  # the cap was reached on this line
                        return None
                return self.trace
            if event == "call":
                code = frame.f_code
                if code not in s.targets:
                    if not (
                        s.follow_depth
                        and stack
                        and stack[-1][_DEPTH] < s.follow_depth
                        and s.is_project(code.co_filename)
                        and frame.f_back is stack[-1][_FRAME]
                    ):
                        return None
                    s.add_target(code, stack[-1][_DEPTH] + 1, "followed")
                if code.co_flags & _SUSPENDS and _resumed(frame):
                    s.resume(id(frame), code, frame)
                else:
                    s.enter(code, frame)
                if s.capped:
                    frame.f_trace_lines = False
                return self._local
            if event == "return" and stack and stack[-1][_FRAME] is frame:
                if frame.f_code.co_flags & _SUSPENDS and _yielded(frame):
                    s.suspend(stack.pop(), id(frame))
                else:
                    s.leave(stack.pop())
            return self.trace
        except Exception as exc:  # it would surface in the user's code: stop tracing
            s.fail(exc)
            frame.f_trace = None
            return None


# -- building the target set -------------------------------------------------------------


def collect_targets(
    view_codes: tuple[CodeType, ...],
    view_label: str,
    dotted: list[str] | tuple[str, ...],
    is_project: Callable[[str], bool],
) -> tuple[dict[CodeType, tuple[str, str]], list[str]]:
    """code -> (label, why) for the view, configured, decorated and @profile'd functions."""
    from django.utils.module_loading import import_string

    targets: dict[CodeType, tuple[str, str]] = {}
    problems: list[str] = []
    for code in view_codes:
        targets[code] = (view_label, "view")
    for path in dotted:
        try:
            obj = import_string(path)
        except ImportError as exc:
            problems.append(f"LINE_MEMORY.FUNCTIONS: {path!r} could not be imported ({exc}).")
            continue
        code = getattr(unwrap_function(obj), "__code__", None)
        if isinstance(code, CodeType):
            targets.setdefault(code, (path, "settings"))
        else:
            problems.append(f"LINE_MEMORY.FUNCTIONS: {path!r} is not a Python function.")
    for code, label in list(_decorated.items()):
        targets.setdefault(code, (label, "decorator"))
    for code, label in memory_profiler_functions(is_project).items():
        targets.setdefault(code, (label, "memory_profiler @profile"))
    return targets, problems


# -- the record ------------------------------------------------------------------------------


def source_of(code: CodeType) -> tuple[int, list[str] | None, str | None]:
    """(first line, source lines or None, why not) for a code object."""
    try:
        lines, start = inspect.getsourcelines(code)
    except (OSError, TypeError) as exc:
        return (
            code.co_firstlineno,
            None,
            (
                f"The source of {code.co_name} in {code.co_filename} cannot be read ({exc}); "
                "line numbers are shown without their text."
            ),
        )
    return max(start, 1), [line.rstrip("\n") for line in lines], None


def build_record(session: LineMemorySession) -> dict[str, Any]:
    """JSON-native record: per function, per executed line, bytes and counts."""
    source = session.source
    functions = []
    for code, (label, why) in session.targets.items():
        lines = session.lines.get(code)
        if not lines:
            continue
        first, text, error = source_of(code)
        functions.append(
            {
                "label": label,
                "why": why,
                "depth": session.depths.get(code, 0),
                "name": code.co_name,
                "file": code.co_filename,
                "first_line": first,
                "source": text,
                "source_error": error,
                "calls": session.calls.get(code, 0),
                "lines": [[lineno, *rec] for lineno, rec in sorted(lines.items())],
            }
        )
    not_run = [
        label
        for code, (label, why) in session.targets.items()
        if code not in session.lines and why != "followed"
    ]
    return {
        "backend": session.backend,
        "backend_label": source.label if source else "",
        "backend_meaning": source.meaning if source else "",
        "backend_how": getattr(source, "how", ""),
        "engine": session.engine,
        "python": sys.version.split()[0],
        "problem": session.problem,
        "start_bytes": session.start_mem,
        "end_bytes": session.end_mem,
        "peak_bytes": session.peak,
        "peak_exact": session.peak_exact,
        "events": session.events,
        "max_events": session.max_events,
        "capped": session.capped,
        "capped_calls": session.capped_calls,
        "cap_mode": session.cap_mode,
        "suspensions": session.suspensions,
        "suspensions_shared": session.suspensions_shared,
        "shared_intervals": session.shared_intervals,
        "own_threads": session.own_threads,
        "follow_depth": session.follow_depth,
        "wall_ms": round(session.wall_ns / 1e6, 3),
        "functions": functions,
        "not_run": not_run,
        "notes": list(session.notes),
        "line_slots": ["line", "inc", "occ", "mem_after", "shared", "nshared"],
    }
