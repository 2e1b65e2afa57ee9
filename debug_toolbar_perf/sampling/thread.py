"""The thread sampler: one process-wide thread reading ``sys._current_frames()``.

It samples one request's stacks: under WSGI the request thread's, under ASGI
every thread's, kept only where this request's view call is on the stack
(:class:`~.follow.ViewInvocation`). Crash-free on every supported interpreter
where vmprof is not (see :mod:`.choice`), at the cost of holding the GIL for
each tick.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import threading
import time
from types import CodeType, FrameType
from typing import Any

from .follow import ViewInvocation
from .raw import FrameKey, RawProfile, code_key

# --- the thread sampler ------------------------------------------------------------------

#: Code flags of frames that can be suspended and resumed by another caller.
_SUSPENDABLE = (
    inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ITERABLE_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
)

#: Name of the sampler thread (probes and tests look for it).
SAMPLER_THREAD_NAME = "debug-toolbar-perf-sampler"

_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved: float | None = None


def _acquire_switch_interval(switch_s: float) -> None:
    """Lower the GIL switch interval to ``switch_s`` while this sampler runs.

    Running Python code hands the GIL to the waiting sampler thread only at the
    switch interval or when it blocks (I/O, a database call). With Python's 5 ms,
    a tick that falls in running code usually waits for the next blocking call, so
    samples pile up on I/O (measured: 98% of samples in sleeps taking 44% of the
    time; 43% at 0.5 ms), and the rate is capped near 160/s. A lower switch
    interval applies to every thread of the process, so it is restored as soon as
    the last sampler that asked for it stops (``SAMPLING.SWITCH_INTERVAL_MS``).
    """
    global _switch_users, _switch_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
        _switch_users += 1
        wanted = max(switch_s, 0.0001)
        if wanted < sys.getswitchinterval():
            sys.setswitchinterval(wanted)


def _release_switch_interval() -> None:
    global _switch_users, _switch_saved
    with _switch_lock:
        _switch_users -= 1
        if _switch_users <= 0:
            _switch_users = 0
            if _switch_saved is not None:
                sys.setswitchinterval(_switch_saved)
            _switch_saved = None


class _Hub:
    """The process's one sampler thread: every tick it reads ``sys._current_frames()``
    once and hands it to each active :class:`ThreadSampler`.

    Starting a thread per request and joining it afterwards cost 0.3-0.5 ms per
    request on a quiet 2-core machine and several ms on a loaded one (both wait
    for the scheduler), the largest fixed cost on a short page. So the thread is
    started by the first session and then *parks* between profiled requests:
    blocked on a lock, no wake-ups, no GIL requests; after :data:`LINGER_S`
    without a session it exits. ``start()`` only wakes it; ``stop()`` only removes
    the session (under ``_mutex``, which a tick holds: once :meth:`remove`
    returns, the session is never sampled again). Concurrent requests share its
    wake-ups. It sleeps in a plain lock's timed ``acquire`` (one C call; a
    ``Condition.wait`` allocates a lock and runs Python code on every tick).
    """

    #: Seconds a parked sampler thread waits for another profiled request before exiting.
    LINGER_S = 30.0

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._mutex = threading.Lock()
        self._sessions: tuple[ThreadSampler, ...] = ()
        self._interval = 0.001
        self._thread: threading.Thread | None = None
        self._wake = threading.Lock()
        self._wake.acquire()
        self._clock: int | None = None
        self._generation = 0
        self.started_threads = 0

    @property
    def sessions(self) -> list[ThreadSampler]:
        """The sessions being sampled now (empty while the thread is parked or gone)."""
        return list(self._sessions)

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def cpu_s(self) -> float:
        """CPU time used so far by the sampler thread (0 if unknown)."""
        clock = self._clock
        if clock is None:
            return 0.0
        try:
            return time.clock_gettime(clock)
        except OSError:
            return 0.0

    def add(self, sampler: ThreadSampler) -> None:
        with self._mutex:
            was_idle = not self._sessions
            self._sessions = (*self._sessions, sampler)
            self._interval = min(s.interval_s for s in self._sessions)
            if self._thread is not None and not self._thread.is_alive():
                self._thread = None  # died (it never should): start another
            if self._thread is not None:
                if was_idle:  # wake the parked thread now rather than at its linger timeout
                    with contextlib.suppress(RuntimeError):  # already released, not yet taken
                        self._wake.release()
                return
            self._generation += 1
            thread = threading.Thread(
                target=self._run,
                args=(self._generation,),
                name=SAMPLER_THREAD_NAME,
                daemon=True,
            )
            try:
                thread.start()
            except BaseException:
                self._sessions = tuple(s for s in self._sessions if s is not sampler)
                raise
            self._thread = thread
            self.started_threads += 1
            self._clock = None
            if hasattr(time, "pthread_getcpuclockid") and thread.ident is not None:
                with contextlib.suppress(OSError):
                    self._clock = time.pthread_getcpuclockid(thread.ident)

    def remove(self, sampler: ThreadSampler) -> None:
        """After this returns, ``sampler`` is never sampled again. Never waits for the thread."""
        with self._mutex:
            self._sessions = tuple(s for s in self._sessions if s is not sampler)
            if self._sessions:
                self._interval = min(s.interval_s for s in self._sessions)

    def shutdown(self, timeout: float = 2.0) -> None:
        """Make a parked thread exit now (tests; a thread with sessions keeps running)."""
        with self._mutex:
            thread = self._thread
            if thread is None or self._sessions:
                return
            self._thread = self._clock = None
            self._generation += 1
            with contextlib.suppress(RuntimeError):
                self._wake.release()
        if thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self, generation: int) -> None:
        me = threading.get_ident()
        mutex = self._mutex
        wake = self._wake
        current_frames = sys._current_frames
        perf_counter = time.perf_counter
        while True:
            if self._sessions:
                wake.acquire(True, self._interval)  # True when add() woke it early
            else:
                # Parked. Woken by add(), it samples at once: getting the GIL back
                # already cost the request one switch, so that tick is not wasted.
                woken = wake.acquire(True, self.LINGER_S)
                if not woken:
                    with mutex:
                        if self._generation == generation and not self._sessions:
                            self._thread = self._clock = None  # parked for LINGER_S: exit
                            self._generation += 1
                            return
            with mutex:
                if self._generation != generation:
                    return
                sessions = self._sessions
                if not sessions:
                    continue
                t0 = perf_counter()
                try:
                    frames = current_frames()
                except Exception as exc:  # never raise in a daemon thread: report it instead
                    for s in sessions:
                        s.fail(exc)
                    continue
                for s in sessions:
                    if not s.done:
                        try:
                            s.sample(frames, me)
                        except Exception as exc:
                            s.fail(exc)
                del frames  # never keep any thread's frames (and their locals) alive
                held = perf_counter() - t0  # with the GIL: time every Python thread lost
                for s in sessions:
                    s.hold_s += held
                    s.ticks += 1


HUB = _Hub()
os.register_at_fork(after_in_child=HUB._reset)


class ThreadSampler:
    """Samples one request's stacks from the shared sampler thread (:class:`_Hub`).

    WSGI: the request thread's stack, read every ``interval`` via
    ``sys._current_frames()``. ASGI (``follow`` given): every thread's stack, kept
    only when it passes through this request's view call (:class:`ViewInvocation`)
    and cut there; ticks when the view runs nowhere are counted as *away*.

    Wall mode counts every tick. CPU mode counts a tick only when the sampled
    thread's CPU clock (``pthread_getcpuclockid``) advanced since its previous
    reading, i.e. it ran during the interval; waits in I/O are left out.

    Stacks are interned in a trie of code objects (node = (parent node, code)), and
    the request thread's stack is walked only down to the first frame that was
    already on it at the previous tick: a running function's callers never change,
    so the rest is the previous stack. The previous tick's frames are held until
    the next tick for that identity check. A stack of 50-60 frames whose innermost
    frames changed costs 2-3 us instead of ~20 us (walking every frame and hashing
    a tuple of code objects), and the sampler holds the GIL that much less.
    Generator and coroutine frames are never taken as the shared point: one can be
    resumed by another caller between ticks.
    """

    engine = "thread"

    def __init__(
        self,
        thread_ident: int,
        interval_ms: float,
        mode: str,
        follow: ViewInvocation | None = None,
        switch_ms: float | None = None,
    ) -> None:
        self.ident = thread_ident
        self.interval_s = interval_ms / 1000.0
        self.switch_s = switch_ms / 1000.0 if switch_ms else None
        self.mode = mode
        self.follow = follow
        self._counts: dict[tuple[int, int], int] = {}  # (leaf node, line) -> samples
        self._child: dict[tuple[int, int], int] = {}  # (parent node, id(code)) -> node
        self._node_code: list[CodeType] = []  # holds the codes, so their ids stay valid
        self._node_parent: list[int] = []
        self._prev: list[FrameType] = []  # root-first frames of the previous sample
        self._prev_nodes: list[int] = []
        self._prev_pos: dict[FrameType, int] = {}
        self._clocks: dict[int, list[Any]] = {}  # thread ident -> [clock id, last CPU time]
        self._threads_seen: set[int] = set()
        #: ASGI: thread -> its innermost frame at the last tick the view was not on it.
        #: Held (frames cannot be weakly referenced) until stop, one frame per thread.
        self._elsewhere: dict[int, FrameType] = {}
        self.sampler_cpu_s = 0.0
        self.hold_s = 0.0  # time the sampler thread held the GIL reading stacks
        self.ticks = 0
        self._hub_cpu0 = 0.0
        self._idle_ticks = 0
        self._away_ticks = 0
        self._error: str | None = None
        self.done = False
        self.started = 0.0
        self.stopped = 0.0
        if mode == "cpu":
            if not hasattr(time, "pthread_getcpuclockid"):
                raise RuntimeError("CPU mode needs time.pthread_getcpuclockid (Unix only)")
            if follow is None:
                clock = time.pthread_getcpuclockid(thread_ident)
                self._clocks[thread_ident] = [clock, time.clock_gettime(clock)]

    def start(self) -> None:
        if self.switch_s is not None:
            _acquire_switch_interval(self.switch_s)
        self.started = time.perf_counter()
        try:
            HUB.add(self)
        except BaseException:
            if self.switch_s is not None:
                _release_switch_interval()
            raise
        self._hub_cpu0 = HUB.cpu_s()

    def fail(self, exc: BaseException) -> None:
        self._error = f"{type(exc).__name__}: {exc}"
        self.done = True

    def sample(self, frames: dict[int, FrameType], hub_ident: int) -> None:
        """One tick (in the sampler thread, under the hub's lock)."""
        if self.follow is None:
            self._sample_thread(frames)
        else:
            self._sample_request(frames, hub_ident)

    def _ran(self, ident: int) -> bool:
        """CPU mode: did thread ``ident`` use CPU since its previous reading?"""
        entry = self._clocks.get(ident)
        if entry is None:  # first sighting (ASGI): no earlier reading to compare with
            clock = time.pthread_getcpuclockid(ident)
            self._clocks[ident] = [clock, time.clock_gettime(clock)]
            return True
        cpu = time.clock_gettime(entry[0])
        ran = cpu > entry[1]
        entry[1] = cpu
        return ran

    def _node(self, parent: int, code: CodeType) -> int:
        key = (parent, id(code))
        node = self._child.get(key)
        if node is None:
            node = self._child[key] = len(self._node_code)
            self._node_code.append(code)
            self._node_parent.append(parent)
        return node

    def _count(self, node: int, line: int) -> None:
        key = (node, line)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1

    def _sample_thread(self, frames: dict[int, FrameType]) -> None:
        frame = frames.get(self.ident)
        if frame is None:  # the request thread is gone
            self.done = True
            return
        if self.mode == "cpu":
            try:
                ran = self._ran(self.ident)
            except OSError:  # the thread is gone
                self.done = True
                return
            if not ran:
                self._idle_ticks += 1
                return
        pos = self._prev_pos
        new = []
        f: FrameType | None = frame
        shared = -1
        while f is not None:
            i = pos.get(f)
            if i is not None and not f.f_code.co_flags & _SUSPENDABLE:
                shared = i  # f and its callers are the previous sample's
                break
            new.append(f)
            f = f.f_back
        prev = self._prev
        for gone in prev[shared + 1 :]:
            del pos[gone]
        stack = prev[: shared + 1]
        nodes = self._prev_nodes[: shared + 1]
        parent = nodes[-1] if nodes else -1
        node_of = self._node
        for fr in reversed(new):
            parent = node_of(parent, fr.f_code)
            pos[fr] = len(stack)
            stack.append(fr)
            nodes.append(parent)
        self._prev, self._prev_nodes = stack, nodes
        self._count(parent, frame.f_lineno or 0)

    def _sample_request(self, frames: dict[int, FrameType], hub_ident: int) -> None:
        follow = self.follow
        assert follow is not None
        wanted = follow.code_ids
        elsewhere = self._elsewhere
        for ident, frame in frames.items():
            if ident == hub_ident or elsewhere.get(ident) is frame:
                continue  # same innermost frame as at a tick where the view was not there
            codes = []
            f: FrameType | None = frame
            while f is not None:
                code = f.f_code
                codes.append(code)
                if id(code) in wanted and follow.is_mine(f):
                    break
                f = f.f_back
            else:
                # A frame's callers never change while it runs: while this thread's
                # innermost frame stays this one (an idle executor thread, the event
                # loop waiting in select()), its stack cannot hold the view.
                elsewhere[ident] = frame
                continue
            # This request's view is on this thread's stack: one place at a time.
            if self.mode == "cpu":
                try:
                    ran = self._ran(ident)
                except OSError:
                    ran = False
                if not ran:
                    self._idle_ticks += 1
                    return
            self._threads_seen.add(ident)
            node = -1
            for code in reversed(codes):  # root-first from the view call
                node = self._node(node, code)
            self._count(node, frame.f_lineno or 0)
            return
        self._away_ticks += 1

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = time.perf_counter()
        cpu = HUB.cpu_s()
        if cpu:  # shared with concurrent sessions: the sampler thread's CPU meanwhile
            self.sampler_cpu_s = max(cpu - self._hub_cpu0, 0.0)
        try:
            HUB.remove(self)
        finally:
            if self.switch_s is not None:
                _release_switch_interval()
            self._elsewhere = {}
            self._prev, self._prev_nodes, self._prev_pos = [], [], {}
            if self.follow is not None:
                self.follow.release()

    def result(self) -> RawProfile:
        t0 = time.perf_counter()
        raw = RawProfile("thread", self.mode, self.interval_s * 1000.0)
        raw.switch_ms = self.switch_s * 1000.0 if self.switch_s is not None else None
        raw.duration_s = max((self.stopped or time.perf_counter()) - self.started, 0.0)
        paths: list[tuple[FrameKey, ...]] = []  # node -> root-first frame keys
        parents = self._node_parent
        for node, code in enumerate(self._node_code):  # a parent is numbered before its child
            parent = parents[node]
            paths.append((*paths[parent], code_key(code)) if parent >= 0 else (code_key(code),))
        stacks = raw.stacks
        for (node, line), n in self._counts.items():
            key = (paths[node], line)
            stacks[key] = stacks.get(key, 0) + n
        if self.follow is not None:
            raw.away_samples = float(self._away_ticks)
            raw.threads = len(self._threads_seen)
        if self._error:
            raw.notes.append(f"The sampler thread stopped early: {self._error}")
        if self.mode == "cpu":
            raw.notes.append(
                f"CPU mode: {self._idle_ticks} ticks skipped while the thread was not on the CPU."
            )
        raw.overhead_ms = {
            "sampler_cpu": self.sampler_cpu_s * 1000.0,
            "sampler_hold": self.hold_s * 1000.0,
            "aggregate": (time.perf_counter() - t0) * 1000.0,
        }
        return raw
