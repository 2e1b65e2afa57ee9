"""Following a router: a view that hands the request to another view.

Some views only dispatch: Wagtail's ``PageViewSetRegistry.as_view`` returns a
``view_router`` that looks up the page's viewset and calls its view. The URL resolves
to the router, a four-line function, while the work is done by the view it calls
(``ExplorableIndexView.get``). Resolving the URL cannot see that; watching the router's
own calls can.

A function view outside the project code (a library's function) is watched with a
profile hook (``sys.setprofile``) in the request's thread from the first perf panel's
start: when the router's frame calls a callable that receives the request, that callable
is resolved like a URL's view (``as_view()`` to its handler method) and the hook removes
itself. It also goes at the router's return, and at the end of the first panel, so it
never outlives the request. Project function views are their own handler and are never
watched; nor is anything when another profiler (cProfile) holds the hook.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from .scope import ViewTarget, is_project_file, target_of_view, wrapper_codes

#: Python 3.13's frame-locals proxy (PEP 667) on a frame that has not started yet.
FRESH_LOCALS_UNSAFE = sys.version_info >= (3, 13)

#: Profile events inside the router before the hook gives up (it never delegates).
MAX_EVENTS = 500_000


def may_route(target: ViewTarget) -> bool:
    """A library's function view: it may hand the request to another view."""
    return (
        target.kind == "function"
        and len(target.codes) == 1
        and not is_project_file(target.codes[0].co_filename)
    )


class RouterFollower:
    """Finds the view a router hands this request to (see the module docstring)."""

    def __init__(self, request: Any, target: ViewTarget) -> None:
        self.request = request
        self.router = target
        self.router_code = target.codes[0]
        self.method = request.method or "GET"
        self.found: ViewTarget | None = None
        self.handler_started = False
        self._callbacks: list[Callable[[ViewTarget], None]] = []
        self._frame: FrameType | None = None
        self._events = 0
        self._on = False

    def start(self) -> bool:
        if sys.getprofile() is not None:
            return False  # cProfile (the toolbar's profiling panel) or a debugger has it
        sys.setprofile(self._hook)
        self._on = True
        return True

    def stop(self) -> None:
        if self._on:
            self._on = False
            if sys.getprofile() == self._hook:
                sys.setprofile(None)
        self._frame = None
        self.request = None

    def on_found(self, callback: Callable[[ViewTarget], None]) -> None:
        """Call ``callback(handler)`` when the handler is found (at once if it was)."""
        if self.found is not None:
            callback(self.found)
        else:
            self._callbacks.append(callback)

    def _hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if self._frame is not None:  # inside the router: bounded
            self._events += 1
            if self._events > MAX_EVENTS:
                self.stop()
                return
        if event != "call":
            if event == "return" and frame is self._frame:
                self.stop()  # the router returned without handing the request on
            return
        router = self._frame
        if router is None:
            if frame.f_code is self.router_code:
                self._frame = frame
            return
        if frame.f_back is not router or not self._serves(frame):
            return
        callee = self._callee(router, frame.f_code)
        if callee is None:
            return
        self.stop()
        handler = target_of_view(callee, self.method)
        if not handler.codes:
            return
        self.found = handler
        # The router called the handler itself (a plain function): it has already started,
        # so a tracer deciding per call (line memory) has already let it pass.
        self.handler_started = frame.f_code in handler.codes
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(handler)
            except Exception:  # a panel's callback must never break the view
                continue

    def _serves(self, frame: FrameType) -> bool:
        if FRESH_LOCALS_UNSAFE:
            # CPython 3.13: reading ``f_locals`` of a frame at its "call" event (before its
            # cells are made) can crash the interpreter (seen here: a segfault in the test
            # suite). The router's own locals (``_callee``) are read instead: the called
            # code must be a callable the router holds.
            return True
        request = self.request
        try:
            return any(value is request for value in frame.f_locals.values())
        except Exception:
            return False

    @staticmethod
    def _callee(router: FrameType, code: CodeType) -> Any:
        """The router's local that is the callable now called (its code or a wrapper's)."""
        try:
            values = list(router.f_locals.values())
        except Exception:
            return None
        for value in values:
            if callable(value) and code in wrapper_codes(value):
                return value
        return None


def follow(request: Any, target: ViewTarget) -> RouterFollower | None:
    """Start following ``target`` if it may route (WSGI: the view runs in this thread)."""
    if not may_route(target):
        return None
    follower = RouterFollower(request, target)
    return follower if follower.start() else None
