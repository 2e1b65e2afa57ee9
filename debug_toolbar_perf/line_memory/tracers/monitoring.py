"""Python 3.12+: ``sys.monitoring`` local events on the traced code objects only."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any

from ..state import _CODE, TOOL_IDS, TOOL_NAME, TracingUnavailable, _current

if TYPE_CHECKING:
    from ..session import LineMemorySession

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
        if self.tool is None:
            return
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
