"""vmprof on the request thread, stopped without its heap walk; raw files kept for export."""

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

from .raw import FrameKey, RawProfile, code_key

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
