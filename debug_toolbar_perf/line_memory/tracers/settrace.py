"""Python 3.10/3.11: a ``sys.settrace`` function that declines every frame but the targets."""

from __future__ import annotations

import dis
import sys
import threading
from collections.abc import Callable
from types import CodeType
from typing import TYPE_CHECKING, Any

from ..state import _DEPTH, _FRAME, _SUSPENDS, MONITORING, TracingUnavailable, _current

if TYPE_CHECKING:
    from ..session import LineMemorySession

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
