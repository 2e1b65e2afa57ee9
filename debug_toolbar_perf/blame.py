"""Where a query or an instance is blamed: the line a user would change.

One rule, used by the instances panel, Explain ("issued at", the N+1 fix) and so the
terminal report, walking from the frame that issued the work outwards:

1. the innermost project frame inside the view's scope;
2. else the template line whose node issued it (``shop/list.html:12 {{ p.category }}``);
3. else the nearest frame of the app that owns the view (a ``ModelAdmin`` method, the
   admin's changelist code), never the ORM's internals;
4. never a middleware or decorator that merely wraps the view: the walk stops at the
   view's scope (the view's code, ``SimpleTemplateResponse.render``, template-response
   hooks), so a project frame outside it is not reached.

Only walks that reach the scope without meeting project code cost more than before (a
scan of the frames walked); a walk that meets project code first is unchanged.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from types import CodeType, FrameType
from typing import NamedTuple

from django.template.base import Node

from .scope import ViewTarget, deferred_render_codes, is_project_file, unwrap_function

#: ``(filename, line, function)``: for a template, ``(template path, line, "{{ expr }}")``.
Where = tuple[str, int, str]

PROJECT, TEMPLATE, OWNER, SCOPE = range(4)
#: Frames whose callers change between resumptions (never remembered as a site's frame).
SUSPENDABLE = (
    inspect.CO_GENERATOR
    | inspect.CO_COROUTINE
    | inspect.CO_ASYNC_GENERATOR
    | inspect.CO_ITERABLE_COROUTINE
)
MAX_WALK = 2000  # template inheritance nests deep: 300+ frames in Wagtail's admin

RENDER_ANNOTATED: CodeType = Node.render_annotated.__code__
#: id(code) -> the owning app's path fragment (None: read it from the frame). The codes are
#: kept in ``_KEEP`` so an id is never reused while it is registered.
_BOUNDARIES: dict[int, str | None] = {}
_KEEP: list[CodeType] = []
#: Files of an ORM: never blamed (the user changes the line that asked for the query).
_ORM = (
    os.sep + os.path.join("django", "db") + os.sep,
    os.sep + "query.py",
    os.sep + "managers.py",
)


class Blame(NamedTuple):
    """The frame a site is read from, its distance from the start, the site, its kind."""

    frame: FrameType
    depth: int
    where: Where
    kind: int


def owner_of_module(module: str | None) -> str | None:
    """The path fragment of the app a view's module belongs to (``/django/contrib/admin/``,
    ``/wagtail/``), or None."""
    if not module:
        return None
    parts = module.split(".")
    keep = 3 if parts[0] == "django" and len(parts) > 3 else 1
    return os.sep + os.sep.join(parts[:keep]) + os.sep


def note_view(target: ViewTarget) -> None:
    """Register a resolved view's code and its wrappers as the scope's edge, with the app
    that owns the view."""
    _register_deferred()
    owner = None
    for func in target.functions:
        owner = owner or owner_of_module(getattr(func, "__module__", None))
    for code in (*target.codes, *target.wrappers):
        if id(code) not in _BOUNDARIES:
            _KEEP.append(code)
            _BOUNDARIES[id(code)] = owner


_deferred_done: list[bool] = []


def _register_deferred() -> None:
    if _deferred_done:
        return
    _deferred_done.append(True)
    for code in deferred_render_codes():
        if id(code) not in _BOUNDARIES:
            _KEEP.append(code)
            _BOUNDARIES[id(code)] = None


def is_boundary(code: CodeType) -> bool:
    return id(code) in _BOUNDARIES


def template_where(frame: FrameType) -> Where | None:
    """``(template path, line, "{% tag %}" / "{{ expr }}")`` of a ``Node.render_annotated``
    frame, else None."""
    if frame.f_code is not RENDER_ANNOTATED:
        return None
    node = frame.f_locals.get("self")
    token = getattr(node, "token", None)
    origin = getattr(node, "origin", None)
    if token is None or origin is None:
        return None
    name = str(getattr(origin, "name", "") or getattr(origin, "template_name", "") or "")
    contents = str(getattr(token, "contents", ""))[:120]
    kind = getattr(getattr(token, "token_type", None), "name", "")
    label = f"{{{{ {contents} }}}}" if kind == "VAR" else f"{{% {contents} %}}"
    return (name, int(getattr(token, "lineno", 0) or 0), label)


def _owner_at(frame: FrameType) -> str | None:
    """The owning app of the view whose scope ``frame`` (a boundary) opens."""
    owner = _BOUNDARIES.get(id(frame.f_code))
    if owner is not None:
        return owner
    # SimpleTemplateResponse.render or a template-response hook: the request's view.
    local = frame.f_locals
    holder = local.get("request") or getattr(local.get("self"), "_request", None)
    match = getattr(holder, "resolver_match", None)
    func = getattr(match, "func", None)
    if func is None:
        return None
    cls = getattr(func, "view_class", None) or getattr(func, "cls", None)
    plain = cls if cls is not None else unwrap_function(func)
    return owner_of_module(getattr(plain, "__module__", None))


def site_of(frame: FrameType) -> Where:
    code = frame.f_code
    return (code.co_filename, frame.f_lineno or 0, code.co_name)


def blame(
    start: FrameType | None,
    is_project: Callable[[CodeType], bool],
    stop: CodeType | None = None,
) -> Blame | None:
    """The site of work issued at ``start`` by the rule above; None when the walk met
    neither project code nor the view's scope (the caller's own fallback applies)."""
    _register_deferred()
    boundaries = _BOUNDARIES
    walked: list[tuple[FrameType, int]] = []
    f, depth = start, 0
    while f is not None and depth < MAX_WALK:
        code = f.f_code
        if code is stop:
            return None
        if is_project(code):
            return Blame(f, depth, site_of(f), PROJECT)
        if code is RENDER_ANNOTATED:
            where = template_where(f)
            if where is not None and is_project_file(where[0]):
                return Blame(f, depth, where, TEMPLATE)
        if id(code) in boundaries:
            return _inside(walked, f, depth)
        walked.append((f, depth))
        f = f.f_back
        depth += 1
    return None


def _inside(walked: list[tuple[FrameType, int]], boundary: FrameType, depth: int) -> Blame:
    """No project code between the work and the view's scope: the owning app's nearest
    frame, else the innermost template line, else the scope's own frame."""
    owner = _owner_at(boundary)
    template: Blame | None = None
    for f, d in walked:
        filename = f.f_code.co_filename
        if owner and owner in filename and not any(part in filename for part in _ORM):
            return Blame(f, d, site_of(f), OWNER)
        if template is None and f.f_code is RENDER_ANNOTATED:
            where = template_where(f)
            if where is not None:
                template = Blame(f, d, where, TEMPLATE)
    return template or Blame(boundary, depth, site_of(boundary), SCOPE)
