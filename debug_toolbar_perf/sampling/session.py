"""Sampling engines: vmprof where it is known to be safe, a pure-Python thread sampler elsewhere.

Both engines sample *one* thread (the request's) and hand back the same
:class:`RawProfile`: root-first stacks of ``(name, filename, firstlineno)``
keys with the line being executed in the innermost frame, and a count.

Why two engines: vmprof 0.6.0 segfaults on CPython 3.11 and 3.12 (a sample that
lands while C code calls into Python reads an uninitialised frame pointer; see
the field notes), so it is used only where :data:`VMPROF_SAFETY` says the
installed release is safe on the running interpreter. The thread sampler reads
``sys._current_frames()`` from a daemon thread while holding the GIL. Walking
*other* threads' stacks that way can crash CPython 3.11 (see
:func:`follow_refusal`), so on 3.11 a view running outside the request thread
(ASGI, async views) is not sampled.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import inspect
import os
import re
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from importlib import metadata
from types import (
    AsyncGeneratorType,
    CodeType,
    CoroutineType,
    FrameType,
    FunctionType,
    GeneratorType,
    MethodType,
)
from typing import Any

FrameKey = tuple[str, str, int]  # (function name, filename, first line)
StackKey = tuple[tuple[FrameKey, ...], int]  # (root-first frames, line in the leaf)

VMPROF_EXTRA = 'pip install "django-debug-toolbar-perf[vmprof]"'

# --- which vmprof is safe where --------------------------------------------------------

#: (python major, minor) -> {vmprof version: True if safe, False if it crashes}.
#: Filled from measurements (field notes: 0.6.0 crashed 11/12 and 12/12 runs on
#: 3.11/3.12 and ran clean on 3.10 and 3.13). The rule, in :func:`vmprof_verdict`:
#:
#: * an exact entry decides;
#: * a release newer than every listed one is *presumed safe* if the newest listed
#:   release is safe on that interpreter (no regression expected), and is
#:   *unverified* if the newest listed release crashes there: the crash is not
#:   known to be fixed until a release is measured and added here;
#: * an interpreter not in the table is unverified.
#:
#: ``ENGINE='auto'`` uses vmprof only when the verdict is "safe"; ``ENGINE='vmprof'``
#: also accepts "unverified" (the user opts in) but never "crashes".
VMPROF_SAFETY: dict[tuple[int, int], dict[str, bool]] = {
    (3, 10): {"0.6.0": True},
    (3, 11): {"0.6.0": False},
    (3, 12): {"0.6.0": False},
    (3, 13): {"0.6.0": True},
}


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts)


@functools.cache
def installed_vmprof_version() -> str | None:
    """The installed vmprof release, or None when vmprof is not importable.

    Cached: ``importlib.metadata`` scans every distribution on ``sys.path``
    (0.3-0.4 ms), which was the largest fixed cost of a profiled request.
    """
    try:
        return metadata.version("vmprof")
    except metadata.PackageNotFoundError:
        return None


def vmprof_verdict(
    python: tuple[int, int],
    version: str,
    table: dict[tuple[int, int], dict[str, bool]] | None = None,
) -> tuple[str, str]:
    """("safe" | "crashes" | "unverified", reason) for vmprof ``version`` on ``python``."""
    table = VMPROF_SAFETY if table is None else table
    py = f"{python[0]}.{python[1]}"
    known = table.get(python)
    if not known:
        return "unverified", f"vmprof {version} has not been checked on Python {py}"
    if version in known:
        if known[version]:
            return "safe", f"vmprof {version} is known to run clean on Python {py}"
        return "crashes", (
            f"vmprof {version} is known to crash (SIGSEGV) on Python {py}, so it is never started"
        )
    newest = max(known, key=_version_tuple)
    if _version_tuple(version) > _version_tuple(newest):
        if known[newest]:
            return "safe", (
                f"vmprof {version} is newer than {newest}, which runs clean on Python {py}"
            )
        return "unverified", (
            f"vmprof {newest} crashes on Python {py}; {version} is not yet verified to fix it"
        )
    return "unverified", f"vmprof {version} has not been checked on Python {py}"


@dataclass(frozen=True)
class EngineChoice:
    engine: str  # "vmprof" | "thread" | "none" (refused)
    reason: str
    vmprof_missing: bool = False


def choose_engine(setting: str) -> EngineChoice:
    """Which engine to run for ``SAMPLING.ENGINE`` = ``setting``, and why."""
    if setting == "thread":
        return EngineChoice("thread", "ENGINE is 'thread' in settings")
    version = installed_vmprof_version()
    if version is None:
        return EngineChoice(
            "thread",
            f"vmprof is not installed ({VMPROF_EXTRA}); the built-in thread sampler ran",
            vmprof_missing=True,
        )
    verdict, why = vmprof_verdict(sys.version_info[:2], version)
    if verdict == "safe" or (verdict == "unverified" and setting == "vmprof"):
        return EngineChoice("vmprof", why)
    return EngineChoice("thread", f"{why}; the thread sampler ran instead")


# --- the common result -----------------------------------------------------------------


@dataclass
class RawProfile:
    """What an engine measured for one thread. Aggregated; no frame objects kept."""

    engine: str
    mode: str
    interval_ms: float
    duration_s: float = 0.0
    stacks: dict[StackKey, float] = field(default_factory=dict)
    foreign_samples: float = 0.0  # samples of other threads, dropped
    overhead_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    raw_file: str | None = None
    away_samples: float = 0.0  # ASGI: ticks while this request's view ran nowhere
    threads: int = 0  # ASGI: threads the view was seen running in
    switch_ms: float | None = None  # thread sampler: the GIL switch interval it set, if any
    not_sampled: str | None = None  # why nothing was sampled at all

    @property
    def samples(self) -> float:
        return sum(self.stacks.values())


#: id(code) -> (code, key). By identity: hashing a code object hashes its constants (~1 us);
#: the code is held so the id cannot be reused while the entry exists.
_KEYS: dict[int, tuple[CodeType, FrameKey]] = {}


def code_key(code: CodeType) -> FrameKey:
    entry = _KEYS.get(id(code))
    if entry is not None and entry[0] is code:
        return entry[1]
    name = getattr(code, "co_qualname", code.co_name)
    key = (name, code.co_filename, code.co_firstlineno)
    if len(_KEYS) < 100_000:
        _KEYS[id(code)] = (code, key)
    return key


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


def _refers_to(value: Any, request: Any) -> bool:
    """``value`` is ``request``, wraps it (DRF's ``Request._request``) or holds it as
    ``.request`` (a class-based view's ``self``).

    Instance dicts are read with ``object.__getattribute__``, so no ``__getattr__``
    and no lazy object (``request.user``...) runs in the sampler thread.
    """
    if value is request:
        return True
    for _ in range(2):  # value, then value.request
        try:
            attrs = object.__getattribute__(value, "__dict__")
        except Exception:
            return False
        if type(attrs) is not dict:
            return False
        if attrs.get("_request") is request:
            return True
        value = attrs.get("request")
        if value is None:
            return False
        if value is request:
            return True
    return False


def frame_serves(frame: FrameType, request: Any) -> bool:
    """Whether ``frame`` was called for ``request``: an argument is the request, wraps it
    (DRF) or holds it (``self.request``). Reads ``f_locals`` once; callers cache the verdict."""
    code = frame.f_code
    count = code.co_argcount + code.co_kwonlyargcount
    names = list(code.co_varnames[:count])
    varargs = code.co_varnames[count] if code.co_flags & inspect.CO_VARARGS else None
    try:
        local = frame.f_locals
        values = [local.get(name) for name in names]
        if varargs is not None:
            extra = local.get(varargs)
            if type(extra) is tuple and extra:
                values.append(extra[0])
    except Exception:
        return False
    return any(v is not None and _refers_to(v, request) for v in values)


class ViewInvocation:
    """Recognises *this request's* call of the view among every thread's frames.

    Under ASGI the view does not run in the thread that started the panel: a sync
    view runs in an asgiref executor thread, an async view on the event loop,
    interleaved with other requests' coroutines. A stack belongs to this request
    only if it passes through a frame running the view's code whose arguments
    hold this request. The verdict is cached per frame object, so ``f_locals`` is
    read once per invocation; frames are held (frames cannot be weakly referenced
    and an address may be reused) until the session stops, at most
    :attr:`MAX_VERDICTS` of them.
    """

    MAX_VERDICTS = 64

    def __init__(self, request: Any, codes: tuple[CodeType, ...]) -> None:
        self.request = request
        self.codes = codes  # keeps the ids below valid
        self.code_ids = frozenset(id(c) for c in codes)
        self._verdicts: dict[FrameType, bool] = {}

    def is_mine(self, frame: FrameType) -> bool:
        verdict = self._verdicts.get(frame)
        if verdict is None:
            verdict = frame_serves(frame, self.request)
            if len(self._verdicts) < self.MAX_VERDICTS:
                self._verdicts[frame] = verdict
        return verdict

    def release(self) -> None:
        """Drop every frame and the request (the session is over)."""
        self._verdicts = {}
        self.request = None


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


# --- vmprof ----------------------------------------------------------------------------

_vmprof_lock = threading.Lock()


class ProfilerBusy(RuntimeError):
    """vmprof is process-global and already profiles another request."""


RAW_DIR_NAME = "debug_toolbar_perf_vmprof"
RAW_KEEP = 20
_RAW_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}\.vmprof$")


def raw_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), f"{RAW_DIR_NAME}-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def raw_path(name: str) -> str | None:
    """The kept raw vmprof file called ``name``, if it is a valid name and still exists."""
    if not _RAW_NAME.match(name or ""):
        return None
    path = os.path.join(raw_dir(), name)
    return path if os.path.isfile(path) else None


def _prune_raw_files(directory: str, keep: int = RAW_KEEP) -> None:
    try:
        entries = [os.path.join(directory, n) for n in os.listdir(directory)]
        entries.sort(key=lambda p: os.stat(p).st_mtime)
        for path in entries[:-keep] if keep else entries:
            with contextlib.suppress(OSError):
                os.unlink(path)
    except OSError:
        pass


def _thread_state_address() -> int:
    get = ctypes.pythonapi.PyThreadState_Get
    get.restype = ctypes.c_void_p
    return int(get() or 0)


class VmprofSampler:
    """vmprof (``native=False``) on the request thread; one request at a time per process.

    Wall mode uses ``real_time=True`` (SIGALRM delivered to the registered request
    thread); CPU mode uses ITIMER_PROF, capped at the kernel tick (~250/s here).
    Samples are filtered to the request thread's ``PyThreadState*``.
    """

    engine = "vmprof"

    def __init__(self, interval_ms: float, mode: str, name: str, resolve: str = "registry") -> None:
        self.interval_ms = interval_ms
        self.resolve = resolve
        self.mode = mode
        self.name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:80] or "profile"
        self._fd: int | None = None
        self.path = ""
        self.started = 0.0
        self.stopped = 0.0
        self.disable_ms = 0.0
        self._locked = False
        self.thread_state = 0

    def start(self) -> None:
        import vmprof

        if not _vmprof_lock.acquire(blocking=False):
            raise ProfilerBusy("vmprof is busy with another request")
        self._locked = True
        try:
            if vmprof.is_enabled():
                raise ProfilerBusy("vmprof is already enabled by other code in this process")
            directory = raw_dir()
            _prune_raw_files(directory, RAW_KEEP - 1)
            self.path = os.path.join(directory, f"{self.name}.vmprof")
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            self.thread_state = _thread_state_address()
            self.started = time.perf_counter()
            vmprof.enable(
                self._fd,
                self.interval_ms / 1000.0,
                memory=False,
                lines=True,
                native=False,
                real_time=self.mode == "wall",
            )
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self._locked:
            self._locked = False
            _vmprof_lock.release()

    def stop(self) -> None:
        if self.stopped or not self._locked:
            return
        self.stopped = time.perf_counter()
        try:
            if self.resolve == "heap":
                import vmprof

                vmprof.disable()  # writes every sampled code object's name: a heap walk
            else:
                _fast_disable()
                CODES.add_stack(sys._getframe())
        finally:
            self.disable_ms = (time.perf_counter() - self.stopped) * 1000.0
            self._release()

    def result(self) -> RawProfile:
        # The reader, not vmprof.read_profile(): its Stats() asserts on some traces.
        from vmprof.reader import _read_prof

        t0 = time.perf_counter()
        raw = RawProfile("vmprof", self.mode, self.interval_ms)
        raw.duration_s = max((self.stopped or time.perf_counter()) - self.started, 0.0)
        with open(self.path, "rb") as fh:
            state = _read_prof(fh)
        traces: list[tuple[list[int], float]] = []
        wanted: set[int] = set()
        for trace, weight, thread_id, _mem in state.profiles:
            if thread_id != self.thread_state:
                raw.foreign_samples += weight
                continue
            ints = [a for a in trace if isinstance(a, int)]
            wanted.update(a for a in ints if a > 0)
            traces.append((ints, weight))
        # Names vmprof wrote itself: code objects freed while it ran (or all, in "heap" mode).
        keys: dict[int, FrameKey] = {a: _vmprof_key(n) for a, n in state.virtual_ips}
        missing = wanted - keys.keys()
        walk_ms = 0.0
        if missing:
            resolved, walk_ms, unresolved = CODES.resolve(missing)
            keys.update(resolved)
            if unresolved:
                raw.notes.append(
                    f"{len(unresolved)} sampled code objects could not be named (freed after "
                    "sampling stopped, or created by exec() and unreachable); shown as <unknown>."
                )
        stacks = raw.stacks
        unknown: FrameKey = ("<unknown>", "", 0)
        for ints, weight in traces:
            frames: list[FrameKey] = []
            line = 0
            for addr in ints:
                if addr <= 0:
                    line = -addr
                    continue
                frames.append(keys.get(addr, unknown))
                line = 0
            if not frames:
                continue
            skey = (tuple(frames), line)
            stacks[skey] = stacks.get(skey, 0) + weight
        raw.raw_file = os.path.basename(self.path)
        raw.overhead_ms = {
            "disable": self.disable_ms,
            "read": (time.perf_counter() - t0) * 1000.0 - walk_ms,
        }
        if walk_ms:
            raw.overhead_ms["code_walk"] = walk_ms
        return raw


_LRU_WRAPPER = type(functools.lru_cache(None)(lambda: None))


def _fast_disable() -> None:
    """Stop vmprof without its heap walk.

    ``vmprof.disable()`` is ``_vmprof.stop_sampling()``, a re-read of the whole file,
    ``_vmprof.write_all_code_objects()`` (walks every gc object to name the sampled
    code: 60-130 ms on a large heap) and ``_vmprof.disable()``. The samples record
    ``id(code)``; :data:`CODES` names them instead, so only the first and last
    calls of that sequence are made here (both are the published module's own).
    """
    import _vmprof

    try:
        _vmprof.stop_sampling()
    finally:
        _vmprof.disable()


class CodeRegistry:
    """``id(code) -> code`` for live code objects, held weakly, filled cheaply and lazily.

    vmprof samples record a code object's address. An entry disappears when its
    code object dies (weak reference), so an address reused by a later object is
    never named after the dead one; code freed while vmprof runs is named by
    vmprof itself (its dealloc hook writes the name into the profile).

    Filling, only when an address is missing: first the request thread's stack,
    then every module's functions and classes (independent of heap size), then,
    if still missing, one walk over gc objects (pays for the heap once; addresses
    it cannot name are remembered until the next walk so it is not repeated).
    """

    def __init__(self) -> None:
        self._codes: weakref.WeakValueDictionary[int, CodeType] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self._unnamable: set[int] = set()
        self._module_count = -1
        self.walks: dict[str, int] = {"modules": 0, "heap": 0}

    def __len__(self) -> int:
        return len(self._codes)

    def add(self, code: CodeType) -> None:
        stack = [code]
        codes = self._codes
        while stack:
            c = stack.pop()
            if codes.get(id(c)) is c:
                continue
            codes[id(c)] = c
            stack.extend(k for k in c.co_consts if type(k) is CodeType)

    def add_stack(self, frame: FrameType | None) -> None:
        while frame is not None:
            self.add(frame.f_code)
            frame = frame.f_back

    def _lookup(self, missing: set[int]) -> dict[int, FrameKey]:
        found = {}
        for addr in missing:
            code = self._codes.get(addr)
            if code is not None:
                found[addr] = code_key(code)
        return found

    def _from_modules(self) -> None:
        seen: set[int] = set()
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if type(namespace) is dict:
                self._visit(list(namespace.values()), seen)
        self.walks["modules"] += 1

    def _visit(self, values: list[Any], seen: set[int]) -> None:
        # Exact type checks only: isinstance() would evaluate Django's lazy objects.
        stack = values
        while stack:
            v = stack.pop()
            t = type(v)
            if t is FunctionType:
                self.add(v.__code__)
                wrapped = v.__dict__.get("__wrapped__")
                if wrapped is not None:
                    stack.append(wrapped)
            elif t is staticmethod or t is classmethod or t is MethodType:
                stack.append(v.__func__)
            elif t is property:
                stack.extend(f for f in (v.fget, v.fset, v.fdel) if f is not None)
            elif t is functools.partial:
                stack.append(v.func)
            elif t is _LRU_WRAPPER:
                stack.append(v.__wrapped__)
            elif issubclass(t, type):
                if id(v) not in seen:
                    seen.add(id(v))
                    # Some C types (e.g. _testcapi's) have no __dict__ mapping: skip them.
                    namespace = type.__dict__["__dict__"].__get__(v)
                    if namespace is not None:
                        stack.extend(namespace.values())
            else:
                stack.append(t)  # an instance: its class may be reachable only this way
                if hasattr(t, "__get__") and id(v) not in seen:
                    # Other descriptors (functools/Django cached_property...): their function.
                    seen.add(id(v))
                    try:
                        attrs = object.__getattribute__(v, "__dict__")
                    except AttributeError:
                        continue
                    if type(attrs) is dict:
                        stack.extend(x for x in attrs.values() if type(x) is FunctionType)

    def _from_heap(self) -> None:
        gen_types = (GeneratorType, CoroutineType, AsyncGeneratorType)
        for o in gc.get_objects():
            t = type(o)
            if t is FunctionType:
                self.add(o.__code__)
            elif t in gen_types:
                code = getattr(o, "gi_code", None) or getattr(o, "cr_code", None)
                code = code or getattr(o, "ag_code", None)
                if code is not None:
                    self.add(code)
        self.walks["heap"] += 1

    def resolve(self, missing: set[int]) -> tuple[dict[int, FrameKey], float, set[int]]:
        """Names for ``missing`` addresses, time spent walking (ms), addresses left unnamed."""
        t0 = time.perf_counter()
        walked = False
        with self._lock:
            found = self._lookup(missing)
            left = missing - found.keys()
            if left and len(sys.modules) != self._module_count:
                self._module_count = len(sys.modules)
                self._from_modules()
                walked = True
                found.update(self._lookup(left))
                left -= found.keys()
            if left - self._unnamable:
                self._from_heap()
                walked = True
                found.update(self._lookup(left))
                left -= found.keys()
                self._unnamable = set(left)
        return found, (time.perf_counter() - t0) * 1000.0 if walked else 0.0, left


#: The process-wide registry used by :class:`VmprofSampler` (resolve="registry").
CODES = CodeRegistry()


def _vmprof_key(name: str | None) -> FrameKey:
    """'py:func:12:/path/file.py' -> ('func', '/path/file.py', 12)."""
    if not name:
        return ("<unknown>", "", 0)
    parts = name.split(":", 3)
    if len(parts) == 4 and parts[0] == "py":
        try:
            return (parts[1], parts[3], int(parts[2]))
        except ValueError:
            pass
    return (name.split(":", 2)[1] if name.count(":") >= 1 else name, "", 0)


def thread_ident() -> int:
    return threading.get_ident()


GEVENT_REFUSAL = (
    "Not sampled: this worker runs gevent (monkey-patched threads), where a sampler cannot "
    "tell this request's greenlet from others; use a sync or gthread worker to profile."
)
GEVENT_FIX = "gunicorn --worker-class gthread (or sync)"


def gevent_refusal() -> str | None:
    """Why sampling is refused in this process, or None.

    Under gevent's monkey-patching ``threading.get_ident()`` is a greenlet id, absent
    from ``sys._current_frames()``, and every request's greenlet shares one OS thread:
    both samplers would show nothing or other requests' code. gevent is never imported
    here; only an already patched process is detected.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return None
    try:
        patched = bool(monkey.is_module_patched("threading"))
    except Exception:  # an unexpected gevent: do not guess, sample as usual
        return None
    return GEVENT_REFUSAL if patched else None


def vmprof_importable() -> Any:
    """The vmprof module or None (import errors are a 'missing' engine, not a crash)."""
    try:
        import vmprof
    except Exception:
        return None
    return vmprof


# --- one request's session ---------------------------------------------------------------

#: Why a request's view call is followed across threads, by where the view runs.
FOLLOW_REASONS = {
    "asgi": (
        "under ASGI a sync view runs in an asgiref executor thread and an async view on the "
        "event loop among other requests' coroutines; vmprof samples threads, not requests, "
        "so the thread sampler ran, keeping only the stacks that pass through this request's "
        "view call"
    ),
    "async-view": (
        "this async view runs in the event-loop thread asgiref starts for it (async_to_sync), "
        "not in the request thread that vmprof would sample, so the thread sampler ran, "
        "keeping only the stacks that pass through this request's view call"
    ),
}
FOLLOW_UNRESOLVED = (
    "The view runs outside the request thread (ASGI, or an async view), so the profile "
    "follows this request's view call, and the view could not be resolved for this URL."
)
FOLLOW_MIDDLEWARE_NOTE = (
    "SCOPE is 'middleware', but the view runs outside the thread of the middleware chain "
    "(ASGI: partly on the event loop, partly in executor threads, interleaved with other "
    "requests); the profile is rooted at the view instead."
)
FOLLOW_NOTE = (
    "The profile holds only this request's view call, in whichever thread it ran. Ticks "
    "while it was not running (awaiting I/O, other requests' code on the event loop, "
    "middleware) are counted as 'away' and not shown."
)


FOLLOW_REFUSAL_311 = (
    "The view runs outside the request thread (ASGI, or an async view), so "
    "the profile must walk other threads' stacks, and on Python 3.11 that can crash the "
    "interpreter (a CPython 3.11 frame bug that also crashed Sentry's and Datadog's "
    "samplers; measured here: uvicorn died in 2 of 4 test runs). Profile this page on "
    "Python 3.12+, or under a WSGI server (runserver, gunicorn sync/gthread) with a sync view."
)


def follow_refusal(version: tuple[int, int] | None = None) -> str | None:
    """Why following a view call across threads is refused on this interpreter, or None.

    On 3.11, ``frame.f_back`` on a frame of another thread taken from
    ``sys._current_frames()`` can read a half-built or freed interpreter frame
    (``PyFrame_GetBack`` -> ``_PyFrame_IsIncomplete``) and segfault: seen here under
    uvicorn with executor threads starting and ending. 3.10, 3.12 and 3.13 ran clean.
    The request thread's own stack (WSGI, sync view) is not refused: that thread cannot
    start or end while its request is sampled, and no crash was seen on that path.
    """
    version = sys.version_info[:2] if version is None else version
    return FOLLOW_REFUSAL_311 if version == (3, 11) else None


@dataclass
class SamplingSession:
    """The engine running for one request, why it was chosen, and what went wrong."""

    choice: EngineChoice
    sampler: ThreadSampler | VmprofSampler | None
    notes: list[str] = field(default_factory=list)
    anchor: tuple[str, int] | None = None  # (filename, first line) of process_request
    anchor_depth: int | None = None
    started: float = 0.0
    start_ms: float = 0.0
    stop_ms: float = 0.0
    stopped: bool = False
    busy: bool = False
    mode: str = "wall"
    interval_ms: float = 1.0
    not_sampled: str | None = None
    followed: bool = False  # stacks are cut at this request's view call by the engine

    def stop(self) -> None:
        if self.stopped or self.sampler is None:
            return
        self.stopped = True
        t0 = time.perf_counter()
        try:
            self.sampler.stop()
        finally:
            self.stop_ms = (time.perf_counter() - t0) * 1000.0

    def result(self) -> RawProfile | None:
        if self.sampler is None:
            if self.not_sampled is None:
                return None
            raw = RawProfile("none", self.mode, self.interval_ms, not_sampled=self.not_sampled)
            raw.notes[:0] = [n for n in self.notes if n != self.not_sampled]
            return raw
        self.stop()
        raw = self.sampler.result()
        raw.notes[:0] = self.notes
        raw.overhead_ms["start"] = self.start_ms
        raw.overhead_ms["stop"] = self.stop_ms
        return raw


def start_session(
    engine: str,
    mode: str,
    interval_ms: float,
    name: str,
    anchor_frame: FrameType | None = None,
    vmprof_names: str = "registry",
    follow: ViewInvocation | None = None,
    follow_why: str | None = None,
    switch_ms: float | None = None,
) -> SamplingSession:
    """Start sampling this request with the engine ``engine`` ('auto', 'vmprof', 'thread').

    The view runs in the calling thread (WSGI, sync view): vmprof is process-global;
    if another request holds it, this one falls back to the thread sampler (its
    own thread only), so nothing waits and nothing mixes.

    The view runs elsewhere (``follow_why``, a key of :data:`FOLLOW_REASONS`: ASGI,
    or an async view under WSGI): only the thread sampler with ``follow`` (this
    request's :class:`ViewInvocation`) keeps the request's own stacks; without
    ``follow`` (view not resolved) nothing is sampled, and the session says why.
    """
    t0 = time.perf_counter()
    refusal = gevent_refusal()
    if refusal is not None:  # neither sampler can see this request's greenlet
        return SamplingSession(
            EngineChoice("none", refusal), None, notes=[refusal], mode=mode, interval_ms=interval_ms
        )
    if follow_why is not None:
        # Refused where walking other threads' stacks can crash this interpreter (3.11);
        # not sampled when the view to follow is unknown (never a mixed profile).
        why_not = follow_refusal() or (FOLLOW_UNRESOLVED if follow is None else None)
        if why_not is not None:
            return SamplingSession(
                EngineChoice("none", why_not),
                None,
                mode=mode,
                interval_ms=interval_ms,
                not_sampled=why_not,
                followed=True,
            )
        why = FOLLOW_REASONS[follow_why]
        reason = why[0].upper() + why[1:]
        if engine == "thread":
            reason = f"ENGINE is 'thread' in settings; {why}"
        choice = EngineChoice("thread", reason)
    else:
        choice = choose_engine(engine)
        follow = None
    session = SamplingSession(
        choice, None, mode=mode, interval_ms=interval_ms, followed=follow is not None
    )
    if anchor_frame is not None and follow is None:
        code = anchor_frame.f_code
        session.anchor = (code.co_filename, code.co_firstlineno)
        depth = -1
        f: FrameType | None = anchor_frame
        while f is not None:
            depth += 1
            f = f.f_back
        session.anchor_depth = depth
    if choice.engine == "vmprof":
        sampler = VmprofSampler(interval_ms, mode, name, vmprof_names)
        try:
            sampler.start()
            session.sampler = sampler
        except ProfilerBusy as exc:
            session.busy = True
            session.choice = EngineChoice(
                "thread", f"{exc}: this request was sampled by the thread sampler instead"
            )
        except Exception as exc:  # e.g. the platform refuses the timer: fall back, say so
            session.choice = EngineChoice(
                "thread",
                f"vmprof failed to start ({type(exc).__name__}: {exc}); "
                "the thread sampler ran instead",
            )
    if session.sampler is None:
        thread = ThreadSampler(threading.get_ident(), interval_ms, mode, follow, switch_ms)
        thread.start()
        session.sampler = thread
    if follow is not None:
        session.notes.append(FOLLOW_NOTE)
    session.started = time.perf_counter()
    session.start_ms = (session.started - t0) * 1000.0
    return session
