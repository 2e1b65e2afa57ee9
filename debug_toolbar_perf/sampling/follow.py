"""Following a request's view call across threads (ASGI, async views under WSGI).

The view may run in an asgiref executor thread or on the event loop among other
requests' coroutines: a stack belongs to this request only if it passes through
a frame running the view's code whose arguments hold this request. Other threads'
stacks are read through :func:`~debug_toolbar_perf.stacks.thread_stacks` (reading them
plainly can crash CPython 3.11).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from types import CodeType, FrameType
from typing import Any

from ..stacks import thread_stacks


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
    only if it passes through a frame running the view's code that was called for
    this request.

    The sampler thread never reads such a frame's locals while it runs (on 3.13 that
    is a FrameLocalsProxy over another thread's live fast locals). An async view's
    frame is this request's if this request's sampling panel awaits it
    (:attr:`anchor`, a frame of ours found by identity); else the verdict waits for
    :meth:`decide`, after the request, when this request's call has returned.
    """

    def __init__(self, request: Any, codes: tuple[CodeType, ...]) -> None:
        self.request = request
        self.codes = codes  # keeps the ids below valid
        self.code_ids = frozenset(id(c) for c in codes)
        #: ASGI: the panel's own coroutine frame that awaits the rest of the chain.
        self.anchor: FrameType | None = None
        #: The code of every perf panel's such frame (an intact await chain holds one).
        self.anchor_code: CodeType | None = None

    def anchored(self, frame: FrameType, callers: Sequence[FrameType]) -> bool | None:
        """An async view's ``frame``: True if :attr:`anchor` awaits it, False if another
        request's panel does (the await chain is intact up to it, and ours is not in
        it), None when no panel's frame is above it (decided by :meth:`decide`).
        ``callers``: the frames above it, innermost first, as read with the stack (never
        ``f_back``: on 3.11 making a caller's frame object here could crash)."""
        anchor = self.anchor
        if anchor is None or not frame.f_code.co_flags & inspect.CO_COROUTINE:
            return None
        other = False
        for f in callers:
            if f is anchor:
                return True
            if f.f_code is self.anchor_code:
                other = True
        return False if other else None

    def decide(self, frames: list[FrameType], running: set[FrameType]) -> list[FrameType]:
        """Which of ``frames`` (calls of the view) were this request's, after it.

        Called once this request's view call has returned: a frame still on a thread's
        stack (``running``) is another request's, decided without reading it; the others
        have returned, or are coroutines suspended, and their locals are read here.
        """
        return [f for f in frames if f not in running and frame_serves(f, self.request)]

    def release(self) -> None:
        """Drop the frames and the request (the session is over)."""
        self.anchor = None
        self.request = None


def running_frames(wanted: set[FrameType]) -> set[FrameType]:
    """Those of ``wanted`` on some thread's stack now (read: identity only)."""
    found: set[FrameType] = set()
    if not wanted:
        return found
    for stack in thread_stacks().values():
        found.update(f for f in stack if f in wanted)
    return found


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
