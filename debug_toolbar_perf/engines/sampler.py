"""Sampling engines: vmprof where it is known to be safe, a pure-Python thread sampler elsewhere.

Both engines sample *one* thread (the request's) and hand back the same
:class:`RawProfile`: root-first stacks of ``(name, filename, firstlineno)``
keys with the line being executed in the innermost frame, and a count.

Why two engines: vmprof 0.6.0 segfaults on CPython 3.11 and 3.12 (a sample that
lands while C code calls into Python reads an uninitialised frame pointer; see
the field notes), so it is used only where :data:`VMPROF_SAFETY` says the
installed release is safe on the running interpreter. The thread sampler reads
``sys._current_frames()`` from a daemon thread while holding the GIL, which is
crash-free on every version.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
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


def installed_vmprof_version() -> str | None:
    """The installed vmprof release, or None when vmprof is not importable."""
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
    return EngineChoice("thread", f"{why}; the crash-free thread sampler ran instead")


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

    @property
    def samples(self) -> float:
        return sum(self.stacks.values())


_KEYS: dict[CodeType, FrameKey] = {}


def code_key(code: CodeType) -> FrameKey:
    key = _KEYS.get(code)
    if key is None:
        name = getattr(code, "co_qualname", code.co_name)
        key = (name, code.co_filename, code.co_firstlineno)
        if len(_KEYS) < 100_000:
            _KEYS[code] = key
    return key


# --- the thread sampler ------------------------------------------------------------------

_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved: float | None = None


def _acquire_switch_interval(interval_s: float) -> None:
    """Shorten the GIL switch interval while any sampler runs, so it gets the GIL on time.

    With the default 5 ms the sampler thread waits for the request thread to drop
    the GIL and reaches ~160 samples/s; at ``interval/2`` it reaches ~500/s.
    """
    global _switch_users, _switch_saved
    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = sys.getswitchinterval()
        _switch_users += 1
        wanted = max(interval_s / 2, 0.0002)
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


class ThreadSampler:
    """Samples one thread's stack from a daemon thread via ``sys._current_frames()``.

    Wall mode counts every tick. CPU mode counts a tick only when the target
    thread's CPU clock (``pthread_getcpuclockid``) advanced since the previous
    tick, i.e. it ran during the interval; waits in I/O are left out.
    """

    engine = "thread"

    def __init__(self, thread_ident: int, interval_ms: float, mode: str) -> None:
        self.ident = thread_ident
        self.interval_s = interval_ms / 1000.0
        self.mode = mode
        self._stop = threading.Event()
        self._counts: dict[tuple[tuple[CodeType, ...], int], int] = {}
        self._thread: threading.Thread | None = None
        self._sampler_cpu_s = 0.0
        self._idle_ticks = 0
        self._error: str | None = None
        self.started = 0.0
        self.stopped = 0.0
        self._cpu_clock: int | None = None
        if mode == "cpu":
            if not hasattr(time, "pthread_getcpuclockid"):
                raise RuntimeError("CPU mode needs time.pthread_getcpuclockid (Unix only)")
            self._cpu_clock = time.pthread_getcpuclockid(thread_ident)

    def start(self) -> None:
        _acquire_switch_interval(self.interval_s)
        self.started = time.perf_counter()
        self._thread = threading.Thread(
            target=self._run, name="debug-toolbar-perf-sampler", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        cpu0 = time.thread_time()
        try:
            self._loop()
        except Exception as exc:  # never raise in a daemon thread; report it instead
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self._sampler_cpu_s = time.thread_time() - cpu0

    def _loop(self) -> None:
        ident = self.ident
        counts = self._counts
        current_frames = sys._current_frames
        wait = self._stop.wait
        interval = self.interval_s
        clock = self._cpu_clock
        last_cpu = time.clock_gettime(clock) if clock is not None else 0.0
        while not wait(interval):
            if clock is not None:
                try:
                    cpu = time.clock_gettime(clock)
                except OSError:  # the thread is gone
                    return
                ran = cpu > last_cpu
                last_cpu = cpu
                if not ran:
                    self._idle_ticks += 1
                    continue
            frame: FrameType | None = current_frames().get(ident)
            if frame is None:
                return
            codes = []
            line = frame.f_lineno or 0
            f: FrameType | None = frame
            while f is not None:
                codes.append(f.f_code)
                f = f.f_back
            del frame, f  # never keep the request's frames (and their locals) alive
            key = (tuple(codes), line)
            counts[key] = counts.get(key, 0) + 1

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = time.perf_counter()
        self._stop.set()
        try:
            if self._thread is not None:
                self._thread.join(timeout=2.0)
        finally:
            _release_switch_interval()

    def result(self) -> RawProfile:
        t0 = time.perf_counter()
        raw = RawProfile("thread", self.mode, self.interval_s * 1000.0)
        raw.duration_s = max((self.stopped or time.perf_counter()) - self.started, 0.0)
        stacks = raw.stacks
        for (codes, line), n in self._counts.items():
            key = (tuple(code_key(c) for c in reversed(codes)), line)
            stacks[key] = stacks.get(key, 0) + n
        if self._thread is not None and self._thread.is_alive():
            raw.notes.append(
                "The sampler thread did not stop within 2 s; its last samples are missing."
            )
        if self._error:
            raw.notes.append(f"The sampler thread stopped early: {self._error}")
        if self.mode == "cpu":
            raw.notes.append(
                f"CPU mode: {self._idle_ticks} ticks skipped while the thread was not on the CPU."
            )
        raw.overhead_ms = {
            "sampler_cpu": self._sampler_cpu_s * 1000.0,
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
            return None
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
) -> SamplingSession:
    """Start sampling the calling thread with the engine ``engine`` ('auto', 'vmprof', 'thread').

    vmprof is process-global: if another request holds it, this one falls back to
    the thread sampler (its own thread only), so nothing waits and nothing mixes.
    """
    t0 = time.perf_counter()
    refusal = gevent_refusal()
    if refusal is not None:  # neither sampler can see this request's greenlet
        return SamplingSession(EngineChoice("none", refusal), None, notes=[refusal])
    choice = choose_engine(engine)
    session = SamplingSession(choice, None)
    if anchor_frame is not None:
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
        thread = ThreadSampler(threading.get_ident(), interval_ms, mode)
        thread.start()
        session.sampler = thread
    session.started = time.perf_counter()
    session.start_ms = (session.started - t0) * 1000.0
    return session
