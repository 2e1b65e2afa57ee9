"""Which code the panel traces: the view, configured functions, and decorated helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import CodeType, FunctionType
from typing import Any

from ..scope import unwrap_function

# -- the decorator ---------------------------------------------------------------

_decorated: dict[CodeType, str] = {}


def profile_memory(func: Any) -> Any:
    """Mark ``func`` for the LineMemoryPanel; returns it unchanged (no cost when off)."""
    plain = unwrap_function(func)
    code = getattr(plain, "__code__", None)
    if isinstance(code, CodeType):
        _decorated[code] = _label(plain)
    return func


def _label(func: Any) -> str:
    module = getattr(func, "__module__", None) or "?"
    return f"{module}.{getattr(func, '__qualname__', getattr(func, '__name__', '?'))}"


# -- memory_profiler's @profile ----------------------------------------------------

#: module id -> (module, number of names when scanned, @profile'd codes found in it)
_mp_cache: dict[int, tuple[Any, int, dict[CodeType, str]]] = {}


def _is_mp_wrapper(obj: Any, mp_file: str) -> bool:
    code = getattr(obj, "__code__", None)
    return (
        isinstance(obj, FunctionType)
        and isinstance(code, CodeType)
        and code.co_name == "wrapper"
        and os.path.realpath(code.co_filename) == mp_file
    )


def _scan_module(module: Any, mp_file: str) -> dict[CodeType, str]:
    found: dict[CodeType, str] = {}
    for obj in list(vars(module).values()):
        candidates = [obj]
        if isinstance(obj, type) and obj.__module__ == module.__name__:
            candidates = list(vars(obj).values())
        for cand in candidates:
            cand = cand.__func__ if isinstance(cand, (staticmethod, classmethod)) else cand
            if _is_mp_wrapper(cand, mp_file):
                plain = unwrap_function(cand)
                code = getattr(plain, "__code__", None)
                if isinstance(code, CodeType) and os.path.realpath(code.co_filename) != mp_file:
                    found[code] = _label(plain)
    return found


def memory_profiler_functions(is_project: Callable[[str], bool]) -> dict[CodeType, str]:
    """Code of project functions decorated with memory_profiler's ``@profile``.

    Its ``profile`` returns a ``functools.wraps`` wrapper, so ``__wrapped__`` leads to
    the original function. Each project module is scanned again only when its number
    of names changes (a dict lookup per module on later requests).
    """
    mp = sys.modules.get("memory_profiler")
    mp_path = getattr(mp, "__file__", None)
    if not mp_path:
        return {}
    mp_file = os.path.realpath(mp_path)
    found: dict[CodeType, str] = {}
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if not filename or not is_project(filename):
            continue
        size = len(vars(module))
        cached = _mp_cache.get(id(module))
        if cached is None or cached[0] is not module or cached[1] != size:
            cached = _mp_cache[id(module)] = (module, size, _scan_module(module, mp_file))
        found.update(cached[2])
    return found


# -- building the target set -------------------------------------------------------------


def collect_targets(
    view_codes: tuple[CodeType, ...],
    view_label: str,
    dotted: list[str] | tuple[str, ...],
    is_project: Callable[[str], bool],
) -> tuple[dict[CodeType, tuple[str, str]], list[str]]:
    """code -> (label, why) for the view, configured, decorated and @profile'd functions."""
    from django.utils.module_loading import import_string

    targets: dict[CodeType, tuple[str, str]] = {}
    problems: list[str] = []
    for code in view_codes:
        targets[code] = (view_label, "view")
    for path in dotted:
        try:
            obj = import_string(path)
        except ImportError as exc:
            problems.append(f"LINE_MEMORY.FUNCTIONS: {path!r} could not be imported ({exc}).")
            continue
        found = getattr(unwrap_function(obj), "__code__", None)
        if isinstance(found, CodeType):
            targets.setdefault(found, (path, "settings"))
        else:
            problems.append(f"LINE_MEMORY.FUNCTIONS: {path!r} is not a Python function.")
    for code, label in list(_decorated.items()):
        targets.setdefault(code, (label, "decorator"))
    for code, label in memory_profiler_functions(is_project).items():
        targets.setdefault(code, (label, "memory_profiler @profile"))
    return targets, problems
