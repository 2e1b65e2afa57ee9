"""The thread sampler: one process-wide thread reading other threads' stacks.

It samples one request's stacks: under WSGI the request thread's, under ASGI
every thread's, kept only where this request's view call is on the stack
(:class:`~.follow.ViewInvocation`). Crash-free on every supported interpreter
where vmprof is not (see :mod:`.choice`), at the cost of holding the GIL for
each tick. Stacks are read through :func:`~debug_toolbar_perf.stacks.thread_stacks`
(with the garbage collector off: reading them plainly crashes 3.11 under load).
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

from django.template.base import NodeList, TextNode

from ..blame import RENDER_ANNOTATED, template_where
from ..stacks import thread_stacks
from .follow import ViewInvocation, running_frames
from .raw import FrameKey, RawProfile, code_key

# --- the thread sampler ------------------------------------------------------------------

#: ``NodeList.render`` and (3.10/3.11) its list comprehension: between two template nodes.
_NODELIST_RENDER: CodeType = NodeList.render.__code__
_NODELIST_COMP: CodeType | None = next(
    (c for c in _NODELIST_RENDER.co_consts if isinstance(c, CodeType)), None
)
#: Django's ``TextNode.render_annotated`` (its own, without the exception annotation): the
#: text between two tags, part of the node around it.
_TEXT_RENDER: CodeType | None = (
    TextNode.render_annotated.__code__
    if TextNode.render_annotated.__code__ is not RENDER_ANNOTATED
    else None
)
#: Template plumbing that adds no node: its samples go to the node being rendered.
_FOLDED = frozenset(id(c) for c in (_NODELIST_RENDER, _NODELIST_COMP, _TEXT_RENDER) if c)


def _template_key(frame: FrameType) -> FrameKey:
    """``("book_list.html:3 {{ book.author.name }}", path, 3)`` for a returned
    ``Node.render_annotated`` frame; the plain function when its node cannot be read."""
    try:
        where = template_where(frame)
    except Exception:
        where = None
    if where is None:
        return code_key(frame.f_code)
    path, line, label = where
    return (f"{os.path.basename(path)}:{line} {label}", path, line)


def _leaf_line(frame: FrameType) -> int:
    """The sampled line; 0 in the template plumbing, whose node names its own line."""
    code = frame.f_code
    if id(code) in _FOLDED or code is RENDER_ANNOTATED:
        return 0
    return frame.f_lineno or 0


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
    """The process's one sampler thread: every tick it reads the stacks once
    (:func:`~debug_toolbar_perf.stacks.thread_stacks`: the request threads' only, every
    thread's while an ASGI session follows its view) and hands them to each active
    :class:`ThreadSampler`.

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
    #: Tick on a fixed schedule (False: one interval after the previous tick ended).
    FIXED_SCHEDULE = True

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
            shorter = not was_idle and sampler.interval_s < self._interval
            self._sessions = (*self._sessions, sampler)
            self._interval = min(s.interval_s for s in self._sessions)
            if self._thread is not None and not self._thread.is_alive():
                self._thread = None  # died (it never should): start another
            if self._thread is not None:
                # Wake the parked thread now rather than at its linger timeout, and a thread
                # sleeping out a longer session's interval rather than at its end.
                if was_idle or shorter:
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
        read_stacks = thread_stacks
        perf_counter = time.perf_counter
        due = perf_counter()
        while True:
            if self._sessions:
                # A fixed schedule: the next tick is due one interval after the last one was
                # due, not after the last one ended (reading stacks and getting the GIL back
                # took ~40% of each 2 ms interval: ~300 samples/s instead of ~500). Behind
                # by more than an interval, it starts again from now rather than catch up.
                interval = self._interval
                due += interval
                now = perf_counter()
                if not self.FIXED_SCHEDULE or due > now + interval:
                    # Also when the schedule was made for a longer interval (a session with a
                    # long INTERVAL_MS just ended): start again from now, not 60 s from now.
                    due = now + interval
                elif due < now - interval:
                    due = now
                if wake.acquire(True, max(due - now, 0.0)):  # add() woke it: tick now
                    due = perf_counter()
            else:
                # Parked. Woken by add(), it ticks at once (sessions already running take
                # it; the new one takes its first tick one interval after its start).
                woken = wake.acquire(True, self.LINGER_S)
                due = perf_counter()
                if not woken:
                    with mutex:
                        if self._generation == generation and not self._sessions:
                            self._thread = self._clock = None  # parked for LINGER_S: exit
                            self._generation += 1
                            return
            with mutex:
                if self._generation != generation:
                    return
                t0 = perf_counter()
                # A tick stands for the interval before it: a session takes none until one
                # interval after its start (woken from parked, this tick comes at once; a
                # 60 s INTERVAL_MS session of a 1 ms page got it, as 60 s of samples).
                sessions = tuple(s for s in self._sessions if t0 >= s.first_due)
                if not sessions:
                    continue
                try:
                    # Every thread's stack while an ASGI session follows its view around.
                    wanted = (
                        None
                        if any(s.follow is not None for s in sessions)
                        else frozenset(s.ident for s in sessions)
                    )
                    stacks = read_stacks(wanted)
                except Exception as exc:  # never raise in a daemon thread: report it instead
                    for s in sessions:
                        s.fail(exc)
                    continue
                for s in sessions:
                    if not s.done:
                        try:
                            s.sample(stacks, me)
                        except Exception as exc:
                            s.fail(exc)
                del stacks  # never keep any thread's frames (and their locals) alive
                held = perf_counter() - t0  # with the GIL: time every Python thread lost
                for s in sessions:
                    s.hold_s += held
                    s.ticks += 1


HUB = _Hub()
os.register_at_fork(after_in_child=HUB._reset)


class _Call:
    """One call of the followed view seen while sampling (ASGI), and its samples."""

    __slots__ = ("counts", "idle", "mine", "threads", "ticks")

    def __init__(self, mine: bool | None) -> None:
        self.mine = mine  # None: decided after the request (ViewInvocation.decide)
        self.counts: dict[tuple[int, int], int] = {}  # (leaf node, line) -> samples
        self.ticks = 0
        self.idle = 0  # CPU mode: ticks while its thread was off the CPU
        self.threads: set[int] = set()


class ThreadSampler:
    """Samples one request's stacks from the shared sampler thread (:class:`_Hub`).

    WSGI: the request thread's stack, read every ``interval`` (via the hub). ASGI
    (``follow`` given): every thread's stack, kept only when it passes through this
    request's view call (:class:`ViewInvocation`) and cut there; ticks when the view
    runs nowhere are counted as *away*.

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
    #: ASGI: calls of the view held (with their frames) until the request is over.
    MAX_CALLS = 64

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
        #: (parent node, id(code) or a template node's frame) -> node
        self._child: dict[tuple[int, Any], int] = {}
        #: Holds the codes (ids stay valid) and the template nodes' frames until result().
        self._node_code: list[CodeType | FrameType] = []
        self._node_paths: dict[int, tuple[FrameKey, ...]] | None = None  # result()
        self._node_parent: list[int] = []
        self._prev: list[FrameType] = []  # root-first frames of the previous sample
        self._prev_nodes: list[int] = []
        self._prev_pos: dict[FrameType, int] = {}
        self._clocks: dict[int, list[Any]] = {}  # thread ident -> [clock id, last CPU time]
        self._threads_seen: set[int] = set()
        #: ASGI: thread -> its innermost frame at the last tick the view was not on it.
        #: Held (frames cannot be weakly referenced) until stop, one frame per thread.
        self._elsewhere: dict[int, FrameType] = {}
        self._calls: dict[FrameType, _Call] = {}  # ASGI: view call frame -> its samples
        self._calls_dropped = 0
        self._request_ticks = 0
        self.sampler_cpu_s = 0.0
        self.hold_s = 0.0  # time the sampler thread held the GIL reading stacks
        self.ticks = 0
        self._hub_cpu0 = 0.0
        self._idle_ticks = 0
        self._away_ticks = 0
        self._error: str | None = None
        self.done = False
        self.started = 0.0
        self.first_due = 0.0  # the first tick this session takes (perf_counter)
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
        self.first_due = self.started + self.interval_s
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

    def sample(self, stacks: dict[int, list[FrameType]], hub_ident: int) -> None:
        """One tick (in the sampler thread, under the hub's lock): ``stacks`` holds each
        thread's frames, innermost first."""
        if self.follow is None:
            self._sample_thread(stacks)
        else:
            self._sample_request(stacks, hub_ident)

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

    def _node(self, parent: int, code: CodeType | FrameType) -> int:
        # A code by id (hashing a code object hashes its constants); a template node's
        # frame by identity (frames hash by identity), held until result() names it.
        key = (parent, code if isinstance(code, FrameType) else id(code))
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

    def _sample_thread(self, stacks: dict[int, list[FrameType]]) -> None:
        chain = stacks.get(self.ident)
        if not chain:  # the request thread is gone
            self.done = True
            return
        frame = chain[0]
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
        shared = -1
        for f in chain:
            i = pos.get(f)
            if i is not None and not f.f_code.co_flags & _SUSPENDABLE:
                shared = i  # f and its callers are the previous sample's
                break
            new.append(f)
        prev = self._prev
        for gone in prev[shared + 1 :]:
            del pos[gone]
        stack = prev[: shared + 1]
        nodes = self._prev_nodes[: shared + 1]
        parent = nodes[-1] if nodes else -1
        push = self._push
        for fr in reversed(new):
            parent = push(parent, fr)
            pos[fr] = len(stack)
            stack.append(fr)
            nodes.append(parent)
        self._prev, self._prev_nodes = stack, nodes
        self._count(parent, _leaf_line(frame))

    def _push(self, parent: int, frame: FrameType) -> int:
        """The node of ``frame`` under ``parent``: its code's, or for a template node being
        rendered the frame itself, named ``book_list.html:3 {{ book.author.name }}`` by
        :meth:`result`; ``NodeList.render`` (the tower between two template nodes) and a
        text node's own ``render_annotated`` add no node.

        The node being rendered is a local of the frame, and this runs in the sampler
        thread: reading ``f_locals`` of another thread's running frame builds a view of
        its live fast locals (3.13: a FrameLocalsProxy), so the sampler never reads them;
        :meth:`result` does, once the frame has returned.
        """
        code = frame.f_code
        if id(code) in _FOLDED:
            return parent
        if code is RENDER_ANNOTATED:
            return self._node(parent, frame)
        return self._node(parent, code)

    def _sample_request(self, stacks: dict[int, list[FrameType]], hub_ident: int) -> None:
        """ASGI: every thread's stack through a call of the view, kept per call; which
        calls were this request's is decided by :meth:`_keep_mine` (never by reading a
        running frame's locals here)."""
        follow = self.follow
        assert follow is not None
        wanted = follow.code_ids
        elsewhere = self._elsewhere
        calls = self._calls
        self._request_ticks += 1
        for ident, stack in stacks.items():
            if not stack:
                continue
            frame = stack[0]
            if ident == hub_ident or elsewhere.get(ident) is frame:
                continue  # same innermost frame as at a tick where the view was not there
            chain = []
            call: _Call | None = None
            whole = True  # walked to the root without finding this request's call
            for depth, f in enumerate(stack):
                chain.append(f)
                if id(f.f_code) in wanted:
                    call = calls.get(f)
                    if call is None:
                        if len(calls) >= self.MAX_CALLS:
                            self._calls_dropped += 1
                            whole = False
                            break
                        call = calls[f] = _Call(follow.anchored(f, stack[depth + 1 :]))
                    if call.mine is not False:
                        whole = False
                        break
                    call = None  # another request's call of the view: look further up
            if call is None:
                if whole:
                    # A frame's callers never change while it runs: while this thread's
                    # innermost frame stays this one (an idle executor thread, the event
                    # loop waiting in select()), its stack cannot hold the view.
                    elsewhere[ident] = frame
                continue
            if self.mode == "cpu":
                try:
                    ran = self._ran(ident)
                except OSError:
                    ran = False
                if not ran:
                    call.idle += 1
                    if call.mine:
                        return  # this request's call: one place at a time
                    continue
            call.threads.add(ident)
            node = -1
            for f in reversed(chain):  # root-first from the view call
                node = self._push(node, f)
            key = (node, _leaf_line(frame))
            counts = call.counts
            counts[key] = counts.get(key, 0) + 1
            call.ticks += 1
            if call.mine:
                return  # this request's call: one place at a time

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
                try:
                    self._keep_mine()
                finally:
                    self.follow.release()

    def _keep_mine(self) -> None:
        """ASGI, once the view call has returned (the sampler no longer runs this
        session): keep the samples of this request's calls of the view, drop the rest."""
        follow = self.follow
        assert follow is not None
        calls, self._calls = self._calls, {}
        undecided = [f for f, call in calls.items() if call.mine is None]
        decided = set(follow.decide(undecided, running_frames(set(undecided))))
        taken = 0
        for frame, call in calls.items():
            if call.mine or frame in decided:
                for key, n in call.counts.items():
                    self._counts[key] = self._counts.get(key, 0) + n
                self._threads_seen |= call.threads
                self._idle_ticks += call.idle
                taken += call.ticks + call.idle
        self._away_ticks = max(self._request_ticks - taken, 0)

    def _paths(self) -> dict[int, tuple[FrameKey, ...]]:
        """Root-first frame keys of each sampled leaf node and its callers; template
        nodes' frames are named here, then let go.

        Called after stop(), in a thread of the request: every template frame under a
        sampled leaf is this thread's own or below this request's view call, which has
        returned, so no running thread's locals are read (other requests' frames are
        under no kept leaf, and are never read).
        """
        if self._node_paths is None:
            codes, parents = self._node_code, self._node_parent
            paths: dict[int, tuple[FrameKey, ...]] = {}

            for leaf, _line in self._counts:
                todo = []  # the leaf and its callers not named yet, innermost first
                node = leaf
                while node >= 0 and node not in paths:
                    todo.append(node)
                    node = parents[node]
                above = paths[node] if node >= 0 else ()
                for node in reversed(todo):
                    code = codes[node]
                    key = _template_key(code) if isinstance(code, FrameType) else code_key(code)
                    above = paths[node] = (*above, key)
            self._node_paths = paths
            self._node_code = []  # the frames (and the nodes and contexts they hold)
            self._child = {}
        return self._node_paths

    def result(self) -> RawProfile:
        t0 = time.perf_counter()
        raw = RawProfile("thread", self.mode, self.interval_s * 1000.0)
        raw.switch_ms = self.switch_s * 1000.0 if self.switch_s is not None else None
        raw.duration_s = max((self.stopped or time.perf_counter()) - self.started, 0.0)
        paths = self._paths()
        stacks = raw.stacks
        for (node, line), n in self._counts.items():
            key = (paths[node], line)
            stacks[key] = stacks.get(key, 0) + n
        if self.follow is not None:
            raw.away_samples = float(self._away_ticks)
            raw.threads = len(self._threads_seen)
            if self._calls_dropped:
                raw.notes.append(
                    f"{self._calls_dropped} samples in calls of the view beyond the first "
                    f"{self.MAX_CALLS} seen (other requests' among them) were not kept."
                )
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
