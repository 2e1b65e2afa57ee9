"""What a measurement covers: the view's own code, resolved once per request.

Panels have no ``process_view`` hook (django-debug-toolbar 2.0 removed it), so
we resolve the URL ourselves when the panel starts, the same way Django's
handler will, and find the code the view will really run: a function view, the
handler method of a class-based view (``get``, ``post``...), or the action of a
DRF-style viewset. Engines use the code objects to root a profile at the view
or to trace only the view's lines.
"""

from __future__ import annotations

import inspect
import os
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache, partial
from types import CodeType, FunctionType
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import Resolver404, ResolverMatch, get_resolver

from .conf import get_config
from .records import TargetJSON


@dataclass(frozen=True)
class ViewTarget:
    """The code a request's view runs, plus a label people recognise."""

    label: str  # e.g. "shop.views.ProductList.get"
    kind: str  # "function" | "class-based" | "viewset" | "unresolved"
    codes: tuple[CodeType, ...] = field(default=(), repr=False)
    functions: tuple[Any, ...] = field(default=(), repr=False)
    #: Code of the callable Django calls (decorators' wrappers, ``as_view``'s ``view``):
    #: work they issue is inside the view's call, not the middleware's.
    wrappers: tuple[CodeType, ...] = field(default=(), repr=False)

    def to_json(self) -> TargetJSON:
        return {"label": self.label, "kind": self.kind}

    def contains(self, code: CodeType) -> bool:
        return code in self.codes

    @property
    def scope_codes(self) -> tuple[CodeType, ...]:
        """The view's code plus what Django runs after it for the response it returned
        (:func:`deferred_render_codes`): the view's own work. Empty when unresolved."""
        return self.codes + deferred_render_codes() if self.codes else ()


UNRESOLVED = ViewTarget("(view not resolved)", "unresolved")


def unwrap_function(obj: Any) -> Any:
    """Peel decorators, partials and bound methods down to a plain function."""
    seen = 0
    while seen < 50:
        seen += 1
        if isinstance(obj, partial):
            obj = obj.func
        elif inspect.ismethod(obj) or isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        elif hasattr(obj, "__wrapped__"):
            obj = obj.__wrapped__
        else:
            break
    return obj


def _qualname(func: Any) -> str:
    module = getattr(func, "__module__", None) or "?"
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
    return f"{module}.{name}"


def target_from_match(match: ResolverMatch, method: str) -> ViewTarget:
    """The view code a resolved URL runs for ``method``."""
    return target_of_view(match.func, method)


def target_of_view(func: Any, method: str) -> ViewTarget:
    """The code a view callable (a function, ``as_view()``, a viewset) runs for ``method``."""
    method = method.lower()
    # DRF viewsets: as_view({"get": "list"}) sets .cls and .actions on the callable.
    actions = getattr(func, "actions", None)
    view_cls = getattr(func, "cls", None) or getattr(func, "view_class", None)
    if view_cls is not None and isinstance(actions, dict):
        name = actions.get(method) or actions.get("get") or "dispatch"
        handler = getattr(view_cls, name, None)
        return _target(handler, "viewset", f"{view_cls.__module__}.{view_cls.__qualname__}.{name}")
    if view_cls is not None:
        name = method if hasattr(view_cls, method) else "http_method_not_allowed"
        if method == "head" and not hasattr(view_cls, "head") and hasattr(view_cls, "get"):
            name = "get"
        handler = getattr(view_cls, name, None)
        return _target(
            handler, "class-based", f"{view_cls.__module__}.{view_cls.__qualname__}.{name}"
        )
    plain = unwrap_function(func)
    return _target(plain, "function", _qualname(plain))


def _target(handler: Any, kind: str, label: str) -> ViewTarget:
    plain = unwrap_function(handler)
    code = getattr(plain, "__code__", None)
    if not isinstance(code, CodeType):
        return ViewTarget(label, kind)
    return ViewTarget(label, kind, (code,), (plain,))


def resolve_view_target(request: HttpRequest) -> ViewTarget:
    """Resolve the request's URL the way Django's handler will, before the view runs."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
        except Resolver404:
            return UNRESOLVED
        except Exception:  # a broken urlconf is the view's problem, reported by Django
            return UNRESOLVED
    target = target_from_match(match, request.method or "GET")
    return replace(target, wrappers=tuple(wrapper_codes(match.func)))


def wrapper_codes(value: Any) -> list[CodeType]:
    """The code objects a callable runs, through decorators (``__wrapped__``), partials and
    bound methods, outermost first."""
    codes: list[CodeType] = []
    for _ in range(20):
        if isinstance(value, partial):
            value = value.func
            continue
        func = getattr(value, "__func__", value)
        code = getattr(func, "__code__", None)
        if isinstance(code, CodeType):
            codes.append(code)
        value = getattr(func, "__wrapped__", None)
        if value is None:
            break
    return codes


@cache
def deferred_render_codes() -> tuple[CodeType, ...]:
    """Code Django runs after the view returns, for the response the view returned.

    A view returning a ``TemplateResponse`` (generic class-based views, the admin, Wagtail,
    DRF's ``Response``) leaves its template, and every query and model method the template
    touches, to ``SimpleTemplateResponse.render``, called by the handler after the
    ``process_template_response`` hooks of ``MIDDLEWARE``. All of it is the view's work.
    """
    from django.template.response import SimpleTemplateResponse
    from django.utils.module_loading import import_string

    codes = [SimpleTemplateResponse.render.__code__]
    for dotted in getattr(settings, "MIDDLEWARE", None) or ():
        try:
            hook = getattr(import_string(dotted), "process_template_response", None)
        except Exception:  # a broken MIDDLEWARE entry is Django's to report
            continue
        code = function_code(hook) if hook is not None else None
        if code is not None:
            codes.append(code)
    return tuple(codes)


#: Said by a panel whose scope took in the deferred rendering of the view's response.
DEFERRED_NOTE = (
    "The view returned a TemplateResponse: its rendering ({template}), which Django runs "
    "after the view returns, is part of the view's work and is included."
)


def deferred_render(response: Any) -> str | None:
    """The template a ``TemplateResponse`` returned by the view was rendered from, else None."""
    from django.template.response import SimpleTemplateResponse

    if not isinstance(response, SimpleTemplateResponse) or not response.is_rendered:
        return None
    name: Any = response.template_name
    if isinstance(name, (list, tuple)):
        name = name[0] if name else None
    if name is not None and not isinstance(name, str):  # a Template object
        origin = getattr(getattr(name, "template", name), "origin", None)
        name = getattr(origin, "template_name", None) or getattr(origin, "name", None)
    return str(name) if name else "a template"


def scope_is_view() -> bool:
    return get_config()["SCOPE"] == "view"


# --- project code vs library code -------------------------------------------------


@cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()  # ~0.15 ms a call
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(p for p in sys.path if "site-packages" in p or "dist-packages" in p)
    return tuple(sorted({os.path.realpath(r) + os.sep for r in roots if r}, key=len, reverse=True))


@cache
def _project_roots() -> tuple[str, ...]:
    configured = list(get_config()["PROJECT_PATHS"])
    if not configured:
        base = getattr(settings, "BASE_DIR", None)
        configured = [str(base)] if base else [os.getcwd()]
    return tuple(os.path.realpath(p) + os.sep for p in configured)


@cache
def _realpath(filename: str) -> str:
    """Settings-independent, so kept when settings change (a cold realpath costs syscalls)."""
    return os.path.realpath(filename)


@cache
def is_project_file(filename: str) -> bool:
    """True for files under the project paths that are not installed libraries."""
    if not filename or filename.startswith("<"):
        return False
    real = _realpath(filename)
    if any(real.startswith(root) for root in _library_roots()):
        return False
    return any(real.startswith(root) for root in _project_roots())


@cache
def _path_roots() -> tuple[str, ...]:
    """Folders a file is shown relative to: the project's, the libraries' and sys.path's."""
    roots = {*_library_roots(), *_project_roots()}
    roots.update(os.path.realpath(p) + os.sep for p in sys.path if p and os.path.isdir(p))
    return tuple(sorted(roots, key=len, reverse=True))


@cache
def short_path(filename: str) -> str:
    """``filename`` relative to the deepest project, library or sys.path folder holding it
    (``django/db/models/base.py``, ``shop/views.py``): the import path a reader recognises,
    and short enough for a table column. Other names (``<frozen posixpath>``) are kept."""
    if not filename or filename.startswith("<"):
        return filename
    real = _realpath(filename)
    for root in _path_roots():
        if real.startswith(root):
            return real[len(root) :]
    return filename


def clear_caches() -> None:
    for f in (_library_roots, _project_roots, is_project_file, _path_roots, short_path):
        f.cache_clear()


def function_code(obj: Any) -> CodeType | None:
    plain = unwrap_function(obj)
    if isinstance(plain, FunctionType):
        return plain.__code__
    return None


#: Clearers of caches derived from :func:`is_project_file` (per-code classifications kept
#: by engines), run whenever the project paths may have changed.
_derived_clearers: list[Callable[[], None]] = []


def on_project_paths_changed(clear: Callable[[], None]) -> Callable[[], None]:
    """Register ``clear`` to run when the settings behind :func:`is_project_file` change."""
    _derived_clearers.append(clear)
    return clear


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "MIDDLEWARE":
        deferred_render_codes.cache_clear()
    if setting in ("DEBUG_TOOLBAR_PERF", "BASE_DIR"):
        # Only what depends on settings: the library roots and real paths depend on the
        # interpreter alone, and rebuilding them cost ~0.8 ms on the next profiled request.
        for f in (_project_roots, is_project_file):
            f.cache_clear()
        for clear in _derived_clearers:
            clear()


from django.core.signals import setting_changed  # noqa: E402

setting_changed.connect(_on_setting_changed, dispatch_uid="debug_toolbar_perf.scope")
