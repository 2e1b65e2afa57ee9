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

With the heap reading, a flagged interval is then checked against the counting
allocator's per-thread counters: if the other threads kept (almost) nothing, the change is
the line's; if they kept some, only their part is kept apart and they are named
(``_others_allocated``).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import threading
import time
from collections.abc import Callable
from types import CodeType
from typing import Any

from ..records import ErrorRecord, error_record
from .sources import MemorySource, make_source
from .state import (
    _CODE,
    _FRAME,
    _INC,
    _LAST,
    _LINE,
    _LINES,
    _MEM,
    _NSHARED,
    _OCC,
    _OUTER,
    _SHARED,
    CAP_LINE,
    CURRENT,
    MONITORING,
    OTHER_CPU_NS,
    OTHERS_MIN_BYTES,
    OTHERS_MIN_SHARE,
    OWN_THREADS,
    PENDING_CHANGES,
    WINDOW_MASK,
    TracingUnavailable,
)
from .tracers.monitoring import _MonitoringTracer
from .tracers.settrace import _SettraceTracer


def _kept(allocated: int, change: int) -> bool:
    """Did other threads keep enough during a window of ``change`` for their part to be kept
    apart (at least 64 KiB and a tenth of the change)?"""
    return abs(allocated) >= max(OTHERS_MIN_BYTES, abs(change) * OTHERS_MIN_SHARE)


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
        #: memory-profiler is installed (its ``@profile`` functions are traced too)
        self.memory_profiler = True
        self.problem: str | None = None
        #: error records of faults inside the tracer or at stop (the panel shows them)
        self.errors: list[ErrorRecord] = []
        self.engine = ""
        self.source: MemorySource | None = None
        self.start_mem = self.end_mem = self.peak = 0
        self.shared_intervals = 0
        self.wall_ns = 0
        self.peak_exact = False
        self.own_threads: list[str] = []
        self._own_clocks: list[list[int]] = []
        self._x0 = 0
        #: changes measured but not yet charged: [record, change, outer, record, ...].
        #: The CPU clocks that tell whether other threads ran are read once per
        #: ``PENDING_CHANGES`` changes (see ``_make_on_line``), which then share one verdict.
        self._pending: list[Any] = []
        #: bytes freed (negative) or made by garbage collections during the request: a
        #: collection frees garbage of any age, so it is kept out of the line it ran on
        #: what the outermost traced calls' lines changed: Increment and "Others ran"
        #: summed without counting a nested traced call twice (the header's total)
        self.lines_bytes = 0
        self.lines_shared_bytes = 0
        #: heap reading: the counters tell what other threads kept (False: the CPU clocks
        #: alone decide "others ran"), the request's thread, the others' bytes when last read
        self._counted = False
        self._others_now: Callable[[], int] = lambda: 0
        self._ident = 0
        self._others_base = 0
        self._split: int | None = None
        self._thread_cpu: dict[int, tuple[str, int]] = {}
        #: intervals where other threads used CPU but kept no memory: charged to the line
        self.quiet_overlaps = 0
        #: threads that used CPU and allocated while a change was kept apart: name -> times
        self.other_threads: dict[str, int] = {}
        self.gc_bytes = 0
        self.gc_runs = 0
        self._gc_start = 0
        #: other threads' bytes in use when the running collection started
        self._gc_others: int | None = None
        #: threads that ran traced code of this request (entered or resumed a frame)
        self._threads: set[int] = set()
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
        self.backend = self.source.name  # "heap" falls back to tracemalloc where it cannot run
        if self.backend == "heap":
            self._count_others()
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
        gc.callbacks.append(self._on_gc)
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
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
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

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        """Keep what a garbage collection freed out of the line it happened to run on.

        A collection frees unreachable cycles of any age (earlier requests' included) on
        whichever line triggers it: open frames' baselines move by what it freed, so a
        line shows the same on every reload; the total is shown apart. Only collections in
        the threads that ran this request's traced code count.
        """
        # Callbacks are process-wide: another thread's collection can call this while (or
        # after) stop() closes the source. A gc callback must never raise (Python prints
        # "Exception ignored" on the server's stderr), and a stopped session reads nothing.
        if self._stopped:
            return
        # A collection in a thread this request's code never ran in is another thread's
        # doing, which "Others ran" already keeps apart; and while it runs (its callbacks and
        # finalizers are Python code: the GIL moves) this request's own lines may allocate or
        # free, which its readings would take for the collection's (seen in CI both ways).
        if threading.get_ident() not in self._threads:
            return
        try:
            m = self._read()
        except (OSError, ValueError):
            return
        if phase == "start":
            self._gc_start = m
            if self._counted:
                self._gc_others = self._others_in_use()
            return
        if self._gc_others is not None:
            # What the collection freed of other threads' blocks is not their doing: move
            # their baseline, or the next window where they run names them (seen in CI: a
            # collection on the request's line freed an earlier thread's garbage).
            # (The request's own allocations are in its own counter, never in these
            # figures, so the whole change is the collection's and its callbacks'.)
            now = self._others_in_use()
            if now is not None:
                self._others_base += now - self._gc_others
            self._gc_others = None
        d = m - self._gc_start
        if m > self.peak:
            self.peak = m
        if d >= 0:  # a collection only frees: a rise is other threads' work meanwhile
            return
        self.gc_runs += 1
        self.gc_bytes += d
        for st in self.stack:
            st[_MEM] += d
        for st, _p, _x in self.suspended.values():
            st[_MEM] += d

    def _count_others(self) -> None:
        """The request's thread and the other threads' bytes in use, to start with."""
        from . import heap

        self._counted, self._ident = True, threading.get_ident()
        self._others_now = heap.others
        self._others_base = heap.others()
        self._threads_that_ran()  # their clocks, to start with

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

    def _settle(self, closing: int = 0) -> bool:
        """Did other threads run in the window (since the clocks were last read)?

        Charges the changes deferred in that window by the verdict, and starts a new one.
        With the heap reading, "ran" means used CPU *and* allocated (:meth:`_others_allocated`),
        and ``self._split`` is then the other threads' part of the closing change (``closing``,
        charged by the caller) when it is known (None: all of it may be theirs).
        """
        p, t = time.process_time_ns(), time.thread_time_ns()
        x = self._own_cpu() if self._own_clocks else 0
        others = (p - self._p0) - (t - self._t0) - (x - self._x0) > OTHER_CPU_NS
        self._p0, self._t0, self._x0 = p, t, x
        pending = self._pending
        split = None
        if self._counted and others:
            others, split = self._others_allocated(closing + sum(pending[1::3]))
        if pending:
            for i in range(0, len(pending), 3):
                self._charge(pending[i], pending[i + 1], others, pending[i + 2], split)
                split = None  # the heap settles each change at once: one per window
            pending.clear()
        self._split = split
        return others

    def _settle_counted(self) -> bool:
        """:meth:`_settle` for a line under the heap reading: the counters say whether other
        threads kept memory meanwhile (one C call each), and the CPU clocks (1.3 us) are read
        only when they did, to name them (benchmark, 3.11: 3.05 -> 1.96 us per line event
        when every other line changes memory)."""
        if threading.get_ident() != self._ident:
            return self._settle()
        pending = self._pending
        now = self._others_now()
        change = sum(pending[1::3])
        if _kept(now - self._others_base, change):
            return self._settle()
        self._others_base = now
        for i in range(0, len(pending), 3):
            self._charge(pending[i], pending[i + 1], False, pending[i + 2], None)
        pending.clear()
        self._split = None
        return False

    def _others_allocated(self, change: int) -> tuple[bool, int | None]:
        """Other threads used CPU in this window: did they allocate, and how much?

        The counting allocator keeps a counter per thread, so the bytes in use counted for
        the threads other than the request's tell, exactly and in O(1) (read here and around
        collections). Returns (kept apart?, the other threads' part of the window's
        ``change`` or None for all of it):

        * they kept less than 64 KiB and a tenth of the change (Django's autoreloader
          stat-ing files, an idle server thread waking up): the change is the line's;
        * they kept more: that part is kept apart under "Others ran", the rest is the line's.

        Checked from the request's thread only (the one whose counter is the request's).
        """
        if threading.get_ident() != self._ident:
            return True, None
        others = self._others_in_use()
        if others is None:
            return True, None
        allocated = others - self._others_base
        self._others_base = others
        ran = self._threads_that_ran()
        if not _kept(allocated, change):
            self.quiet_overlaps += 1
            return False, None
        for name in ran:
            self.other_threads[name] = self.other_threads.get(name, 0) + 1
        return True, allocated

    def _others_in_use(self) -> int | None:
        """Bytes in use counted for the threads other than the request's, or None when
        called from another thread (its own counter is not the request's)."""
        from . import heap

        if threading.get_ident() != self._ident:
            return None
        return heap.others()

    def _threads_that_ran(self) -> list[str]:
        """Names of the other threads that used CPU since the last look (their own clocks),
        and of those that ended meanwhile (they ran to end)."""
        getclock = getattr(time, "pthread_getcpuclockid", None)
        if getclock is None:
            return []
        ran = []
        me = threading.get_ident()
        seen = {}
        for thread in threading.enumerate():
            ident = thread.ident
            if ident is None or ident == me or thread.name in OWN_THREADS:
                continue
            try:
                cpu = time.clock_gettime_ns(getclock(ident))
            except OSError:
                continue
            last = self._thread_cpu.get(ident)
            if cpu - (last[1] if last else 0) > OTHER_CPU_NS:
                ran.append(thread.name)
            seen[ident] = (thread.name, cpu)
        ran += [name for ident, (name, _cpu) in self._thread_cpu.items() if ident not in seen]
        self._thread_cpu = seen
        return ran

    def _charge(
        self, rec: list[int], d: int, others: bool, outer: bool, split: int | None = None
    ) -> None:
        """Charge change ``d`` to line record ``rec``: to Increment, or kept apart when
        ``others`` ran (all of it, or only their part ``split`` when it is known)."""
        if not d and split is None:
            return
        if others:
            part = d if split is None else split
            rec[_SHARED] += part
            rec[_NSHARED] += 1
            self.shared_intervals += 1
            if outer:
                self.lines_shared_bytes += part
            if part != d:
                rec[_INC] += d - part
                if outer:
                    self.lines_bytes += d - part
        else:
            rec[_INC] += d
            if outer:
                self.lines_bytes += d

    def _close(self, st: list[Any], m: int) -> None:
        """Charge frame-state ``st``'s current line the net change since it began."""
        rec = st[_LINES].get(st[_LINE])
        if rec is None:
            rec = st[_LINES][st[_LINE]] = [0, 0, 0, 0, 0]
        d = m - st[_MEM]
        others = self._settle(d)
        self._charge(rec, d, others, st[_OUTER], self._split)
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
        self._threads.add(threading.get_ident())
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
        st = [code, lines, line, m, self.depths.get(code, 0), frame, not self.stack]
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
        self._threads.add(threading.get_ident())
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
            self._charge(rec, m - st[_MEM], others, st[_OUTER])
            rec[_LAST] = m
        if m > self.peak:
            self.peak = m
        st[_MEM] = m
        st[_FRAME] = frame
        st[_OUTER] = not self.stack  # a generator may be resumed by traced or other code
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
        assert self.source is not None, "start() sets the source first"
        raw_read = self.source.raw
        value = self.source.value
        pending = self._pending
        slots = 3 * PENDING_CHANGES.get(self.backend, 1)
        settle = self._settle_counted if self._counted else self._settle
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
                pending.append(st[6])  # _OUTER
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
