"""Which line issued a statement: the innermost project frame, found cheaply and exactly.

The capture runs for every statement of the request, so the walk up the stack is
its main cost (about 0.1 us per frame, 15 frames from a project view to the
driver, 50 or more when no project frame exists and the walk reaches the top).
Two things keep it cheap:

* each code object is classified once (project, other code outside Django, the
  toolbar, asgiref and us, or to skip);
* a *hint* per query shape: the frame the last walk ended on, its depth, the
  instruction it was executing and the function it was calling. A repeated
  statement from the same place (the loop of an N+1) is recognised with two
  C-level ``sys._getframe(n)`` look-ups instead of a walk: the same live frame
  object at the same depth, blocked on the same call instruction into the same
  function. When the hint names a fallback frame (no project frame at all), it is
  used only for plain function frames, whose callers cannot change while they
  live (a generator's can). Anything else walks.

Under ASGI an async view's ORM call runs in asgiref's executor thread, whose stack
holds asgiref and Django only: the view is a suspended coroutine of the request's
task. When the thread's stack has no project frame, the task's chain of awaits
(``cr_await``) is searched for the innermost project coroutine, whose line is the
``await`` (or ``async for``) that issued the statement.
"""

from __future__ import annotations

import inspect
import os
import sysconfig
from typing import Any

from ..records import Frame, frame_json
from ..scope import is_project_file, on_project_paths_changed
from ..stacks import thread_stacks

#: ``(filename, line, function)``.
Site = tuple[str, int, str]

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OURS = _HERE + os.sep
#: Machinery that runs a query but never decides to: Django, the toolbar, asgiref.
_MACHINERY = tuple(os.sep + name + os.sep for name in ("django", "debug_toolbar", "asgiref"))
#: The standard library (threads, executors, servers), outside any installed package.
_STDLIB = sysconfig.get_paths()["stdlib"] + os.sep
_PACKAGES = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)
MAX_STACK = 30
MAX_WALK = 250
_SUSPENDABLE = (
    inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
)

SKIP, PROJECT, OUTSIDE = 0, 1, 2
#: id(code) -> class. Keyed by id: hashing a code object hashes its bytecode and constants
#: (thousands of instructions, on every frame of every walk). ``_KEEP`` holds the code
#: objects, so an id is never reused while it is in the table.
_CODE_CLASS: dict[int, int] = {}
_KEEP: list[Any] = []


def is_internal(filename: str) -> bool:
    """This package's own files (never shown in a stack)."""
    return filename.startswith(_OURS)


def classify(code: Any) -> int:
    """Per code object, once: project code, other code outside the machinery, or skip."""
    cls = _CODE_CLASS.get(id(code))
    if cls is not None:
        return cls
    filename = code.co_filename
    if is_project_file(filename):
        cls = PROJECT
    elif (
        is_internal(filename)
        or any(part in filename for part in _MACHINERY)
        or (filename.startswith(_STDLIB) and not any(p in filename for p in _PACKAGES))
        or filename.startswith("<")  # <frozen ...>, <string>
    ):
        cls = SKIP
    else:
        cls = OUTSIDE
    if len(_CODE_CLASS) > 50_000:
        _forget()
    _KEEP.append(code)
    _CODE_CLASS[id(code)] = cls
    return cls


@on_project_paths_changed
def _forget() -> None:
    _CODE_CLASS.clear()
    _KEEP.clear()


def site_of(frame: Any) -> Site:
    code = frame.f_code
    return (code.co_filename, frame.f_lineno, code.co_name)


def _thread_handler_code() -> Any:
    try:
        from asgiref.sync import SyncToAsync

        return SyncToAsync.thread_handler.__code__
    except Exception:  # another asgiref: the walk then runs to the thread's top
        return None


#: Where a ``sync_to_async`` call enters its executor thread. Under ASGI the frames above
#: it belong to whatever hosts the executor (a worker loop, or a test waiting in
#: ``async_to_sync``), not to the request: the walk stops there.
ASGI_BOUNDARY = _thread_handler_code()


def walk(frame: Any, stop: Any = None) -> tuple[Any, int, bool]:
    """``(frame, depth, is_project)``: the innermost project frame at or above ``frame``
    (up to a frame running the code ``stop``), else the innermost frame outside the
    machinery, else ``(None, -1, False)``."""
    lookup = _CODE_CLASS.get
    fallback, fallback_depth = None, -1
    f, depth = frame, 0
    while f is not None and depth < MAX_WALK:
        code = f.f_code
        if code is stop:
            break
        cls = lookup(id(code))
        if cls is None:
            cls = classify(code)
        if cls == PROJECT:
            return f, depth, True
        if cls == OUTSIDE and fallback is None:
            fallback, fallback_depth = f, depth
        f = f.f_back
        depth += 1
    return fallback, fallback_depth, False


class Hint:
    """Where the last walk for one shape ended, to recognise the same place next time.

    A project frame is recognised by its code, the call instruction it is blocked on and
    the function it calls, at the same depth: the same line issuing the same statement
    through the same path (a helper called in a loop gets a new frame each time). A
    fallback frame (no project frame at all) must also be the same live frame object:
    only then are the frames above it, where no project frame was found, the same.
    """

    __slots__ = ("callee", "code", "depth", "frame", "lasti", "site")

    def __init__(self, depth: int, frame: Any, callee: Any, site: Site, same_frame: bool) -> None:
        self.depth = depth
        self.code = frame.f_code
        self.frame = frame if same_frame else None
        self.lasti = frame.f_lasti
        self.callee = callee
        self.site = site

    def matches(self, found: Any, below: Any) -> bool:
        return (
            found.f_code is self.code
            and found.f_lasti == self.lasti
            and below.f_code is self.callee
            and (self.frame is None or found is self.frame)
        )


def make_hint(found: Any, depth: int, project: bool, below: Any) -> Hint | None:
    """A hint for ``found`` (``below`` is the frame it calls), or None when not reusable."""
    if found is None or below is None:
        return None
    if not project and found.f_code.co_flags & _SUSPENDABLE:
        return None  # a generator's callers change between resumptions
    return Hint(depth, found, below.f_code, site_of(found), same_frame=not project)


def await_chain(task: Any) -> list[Any]:
    """The frames of a suspended task's chain of awaits, outermost first."""
    frames: list[Any] = []
    try:
        awaitable = task.get_coro()
    except Exception:
        return frames
    for _ in range(MAX_WALK):
        if awaitable is None:
            break
        frame = (
            getattr(awaitable, "cr_frame", None)
            or getattr(awaitable, "gi_frame", None)
            or getattr(awaitable, "ag_frame", None)
        )
        if frame is None:
            break
        frames.append(frame)
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
            or getattr(awaitable, "ag_await", None)
        )
    return frames


def _running(task: Any) -> bool:
    try:
        coro = task.get_coro()
    except Exception:
        return False
    return bool(getattr(coro, "cr_running", False) or getattr(coro, "gi_running", False))


def task_frames(task: Any, loop_thread: int | None) -> list[Any]:
    """The frames of the request task, outermost first, wherever they are now.

    Suspended (the usual case: it awaits the sync call being recorded), they are its chain
    of awaits. But an executor thread may start the sync call before the event loop has
    suspended the task that asked for it; while the task still runs, its frames are the
    event-loop thread's stack.
    """
    for _ in range(3):
        if not _running(task):
            return await_chain(task)
        stack = thread_stacks((loop_thread,)).get(loop_thread) if loop_thread is not None else None
        if stack and _running(task):
            frames: list[Any] = stack[:MAX_WALK]
            frames.reverse()
            return frames
    return await_chain(task)


def task_issuer(task: Any, loop_thread: int | None = None) -> Any:
    """The innermost project frame of the request task, else the innermost one outside the
    machinery (a library's async view), else None."""
    project = outside = None
    for frame in task_frames(task, loop_thread):
        cls = classify(frame.f_code)
        if cls == PROJECT:
            project = frame
        elif cls == OUTSIDE:
            outside = frame
    return project or outside


def stack_of(frame: Any, task: Any = None, loop_thread: int | None = None) -> list[Site]:
    """The stack shown for a shape: this thread's frames (ours left out), innermost first,
    then, under ASGI, the request task's suspended coroutines (innermost first)."""
    out: list[Site] = []
    f = frame
    project = False
    stop = ASGI_BOUNDARY if task is not None else None
    while f is not None and len(out) < MAX_STACK:
        if f.f_code is stop:
            break
        if not is_internal(f.f_code.co_filename):
            out.append(site_of(f))
            project = project or classify(f.f_code) == PROJECT
        f = f.f_back
    if task is not None and not project:
        for coro_frame in reversed(task_frames(task, loop_thread)):
            if len(out) >= MAX_STACK:
                break
            if not is_internal(coro_frame.f_code.co_filename):
                out.append(site_of(coro_frame))
    return out


def site_json(filename: str, line: int, function: str) -> Frame:
    """A recorded site as the shared :class:`~debug_toolbar_perf.records.Frame`."""
    return frame_json(filename, line, function, is_project_file(filename))
