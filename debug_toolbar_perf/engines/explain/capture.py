"""Capture every statement of a request, group them by shape, EXPLAIN each shape once.

Django's documented hook, ``connection.execute_wrapper()``, is installed on each
database alias for the duration of the request. A ``DatabaseWrapper`` belongs to
one thread (one async context), so a concurrent request on another thread never
passes through our wrapper: no global state, nothing to filter.

The EXPLAINs run at the end of the view, on the same connection, with the first
instance's *live* parameters (their driver types intact), on a raw DB-API cursor
from ``connection.create_cursor()``: it bypasses Django's ``CursorWrapper``, so
execute wrappers, ``connection.queries``/``assertNumQueries`` and the toolbar's
SQL panel (which patches ``connection.cursor``) never see the panel's statements.
"""

from __future__ import annotations

import contextlib
import hashlib
import linecache
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.signals import setting_changed
from django.db import connections

from ...analysis.plans import FULL_SCAN, PlanNode, number_nodes
from ...scope import is_project_file
from .params import encode_params, params_rebuildable
from .vendors import Vendor, vendor_for

# --- fingerprints ---------------------------------------------------------------------

_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w\"`.$])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w\"`])")
_PLACEHOLDER = re.compile(r"%s|%\(\w+\)s|\?")
_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.IGNORECASE)
_ROW = r"\(\s*\?(?:\s*,\s*\?)*\s*\)"
_VALUES = re.compile(rf"\bVALUES\s*{_ROW}(?:\s*,\s*{_ROW})*", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_FP_CACHE: dict[str, tuple[str, str]] = {}
_FP_CACHE_MAX = 4096


def fingerprint(sql: str) -> tuple[str, str]:
    """``(shape_id, normalised_sql)``: literals and parameters become ``?``, lists ``(...)``."""
    hit = _FP_CACHE.get(sql)
    if hit is not None:
        return hit
    text = _STRING.sub("?", sql)
    text = _NUMBER.sub("?", text)
    text = _PLACEHOLDER.sub("?", text)
    text = _LIST.sub("IN (...)", text)
    text = _VALUES.sub("VALUES (...)", text)
    text = _SPACE.sub(" ", text).strip()
    result = (hashlib.sha1(text.encode()).hexdigest()[:12], text)
    if len(_FP_CACHE) >= _FP_CACHE_MAX:
        _FP_CACHE.clear()
    _FP_CACHE[sql] = result
    return result


def statement_kind(sql: str) -> str:
    """``select``, ``insert``, ``update``, ``delete`` or ``other`` (savepoints, DDL...)."""
    head = sql.lstrip(" \t\r\n(").split(None, 1)
    word = head[0].upper() if head else ""
    if word == "SELECT":
        return "select"
    if word in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
        return "insert" if word == "REPLACE" else word.lower()
    if word == "WITH":
        upper = sql.upper()
        for verb in ("INSERT", "UPDATE", "DELETE"):
            if re.search(rf"\)\s*{verb}\b", upper):
                return verb.lower()
        return "select"
    return "other"


# --- stacks -----------------------------------------------------------------------------

_HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SKIP_PREFIXES = (_HERE + os.sep,)
MAX_STACK = 30


def _is_internal(filename: str) -> bool:
    return filename.startswith(_SKIP_PREFIXES)


_PROJECT, _OUTSIDE, _SKIP = 1, 2, 0
_CODE_CLASS: dict[Any, int] = {}


def _classify(code: Any) -> int:
    """Per code object, once: project code, other code outside Django and us, or skip."""
    filename = code.co_filename
    if is_project_file(filename):
        cls = _PROJECT
    elif not _is_internal(filename) and "/django/" not in filename:
        cls = _OUTSIDE
    else:
        cls = _SKIP
    if len(_CODE_CLASS) > 50_000:
        _CODE_CLASS.clear()
    _CODE_CLASS[code] = cls
    return cls


def _forget_classes(*, setting: str, **kwargs: Any) -> None:
    if setting in ("DEBUG_TOOLBAR_PERF", "BASE_DIR"):
        _CODE_CLASS.clear()


setting_changed.connect(_forget_classes, dispatch_uid="debug_toolbar_perf.explain.capture")


def issuing_frame(frame: Any) -> tuple[str, int, str]:
    """The innermost project frame, else the innermost frame outside Django and us."""
    fallback = None
    f = frame
    depth = 0
    lookup = _CODE_CLASS.get
    while f is not None and depth < 200:
        code = f.f_code
        cls = lookup(code)
        if cls is None:
            cls = _classify(code)
        if cls == _PROJECT:
            return (code.co_filename, f.f_lineno, code.co_name)
        if cls == _OUTSIDE and fallback is None:
            fallback = (code.co_filename, f.f_lineno, code.co_name)
        f = f.f_back
        depth += 1
    if fallback:
        return fallback
    return (
        (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name) if frame else ("?", 0, "?")
    )


def stack_of(frame: Any) -> list[tuple[str, int, str]]:
    out = []
    f = frame
    while f is not None and len(out) < MAX_STACK:
        if not _is_internal(f.f_code.co_filename):
            out.append((f.f_code.co_filename, f.f_lineno, f.f_code.co_name))
        f = f.f_back
    return out


def frame_json(filename: str, line: int, function: str) -> dict[str, Any]:
    return {
        "file": filename,
        "line": line,
        "function": function,
        "project": is_project_file(filename),
        "source": linecache.getline(filename, line).strip()[:300],
    }


# --- the session --------------------------------------------------------------------------


@dataclass
class Shape:
    """Every statement of one shape on one alias, with the first instance kept live."""

    id: str
    alias: str
    fingerprint: str
    sql: str
    params: Any  # live driver objects, dropped after build_record
    kind: str
    many: bool
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    errors: int = 0
    lines: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    stack: list[tuple[str, int, str]] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    plan_error: str | None = None
    skipped: str | None = None
    explain_ms: float | None = None
    table_rows: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class ExplainStats:
    explains: int = 0  # EXPLAIN statements issued
    size_lookups: int = 0
    explain_s: float = 0.0
    notes: list[str] = field(default_factory=list)


class CaptureSession:
    """One request's statements on every alias, captured with ``execute_wrapper``."""

    def __init__(self, aliases: list[str] | None = None) -> None:
        self.aliases = list(aliases if aliases is not None else connections)
        self.shapes: dict[tuple[str, str], Shape] = {}
        self.vendors: dict[str, str] = {}
        self.statements = 0
        self.other = 0
        self.unrecorded = 0
        self.query_s = 0.0
        self.stats = ExplainStats()
        self._contexts: list[Any] = []
        self._active = False
        self._done = False

    # -- capture --------------------------------------------------------------------------

    def start(self) -> None:
        for alias in self.aliases:
            conn = connections[alias]
            self.vendors[alias] = conn.vendor
            cm = conn.execute_wrapper(self)
            cm.__enter__()
            self._contexts.append(cm)
        self._active = True

    def stop_capture(self) -> None:
        """Remove our wrappers (idempotent; exceptions of one never strand another)."""
        self._active = False
        contexts, self._contexts = self._contexts, []
        for cm in reversed(contexts):
            # The list may have been reset by the view: nothing left to undo then.
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        start = time.perf_counter()
        failed = False
        try:
            return execute(sql, params, many, context)
        except BaseException:
            failed = True
            raise
        finally:
            elapsed = time.perf_counter() - start
            if self._active:
                try:
                    self._record(sql, params, many, context, elapsed, failed)
                except Exception as exc:  # never break the user's query; say so in the panel
                    self.unrecorded += 1
                    if self.unrecorded == 1:
                        self.stats.notes.append(
                            f"Some statements were not recorded: {type(exc).__name__}: {exc}"[:500]
                        )

    def _record(
        self,
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
        elapsed: float,
        failed: bool,
    ) -> None:
        conn = context["connection"]
        if not isinstance(sql, str):
            try:
                sql = sql.as_string(conn.connection)
            except Exception:
                sql = str(sql)
        self.statements += 1
        self.query_s += elapsed
        kind = statement_kind(sql)
        if kind == "other":
            self.other += 1
            return
        shape_id, normal = fingerprint(sql)
        key = (conn.alias, shape_id)
        shape = self.shapes.get(key)
        frame = sys._getframe(2)
        if shape is None:
            first = params[0] if many and params else params
            shape = Shape(
                id=f"{conn.alias}-{shape_id}",
                alias=conn.alias,
                fingerprint=normal,
                sql=sql,
                params=first,
                kind=kind,
                many=many,
            )
            shape.stack = stack_of(frame)
            self.shapes[key] = shape
        shape.count += 1
        shape.total_s += elapsed
        shape.max_s = max(shape.max_s, elapsed)
        if failed:
            shape.errors += 1
        shape.lines[issuing_frame(frame)] += 1

    # -- explain ---------------------------------------------------------------------------

    def ordered_shapes(self) -> list[Shape]:
        """Highest impact first: count x total time."""
        return sorted(self.shapes.values(), key=lambda s: (s.total_s, s.count), reverse=True)

    def explain_all(self, max_shapes: int, size_cap: int) -> None:
        """EXPLAIN each SELECT shape once, on its own alias, while the connection is live."""
        if self._done:
            return
        self._done = True
        started = time.perf_counter()
        todo: dict[str, list[Shape]] = {}
        budget = max_shapes
        for shape in self.ordered_shapes():
            if shape.kind != "select":
                shape.skipped = "not a SELECT: not explained automatically"
                continue
            if shape.errors == shape.count:
                shape.skipped = "the statement failed"
                continue
            if budget <= 0:
                shape.skipped = f"over the limit of {max_shapes} shapes explained per request"
                continue
            budget -= 1
            todo.setdefault(shape.alias, []).append(shape)
        for alias, shapes in todo.items():
            self._explain_alias(alias, shapes, size_cap)
        self.stats.explain_s += time.perf_counter() - started

    def _explain_alias(self, alias: str, shapes: list[Shape], size_cap: int) -> None:
        conn = connections[alias]
        vendor = vendor_for(conn)
        reason = vendor.cannot_run(conn)
        if reason:
            for shape in shapes:
                shape.skipped = reason
            self.stats.notes.append(f"{alias}: {reason}")
            return
        sizes: dict[str, list[Any]] = {}
        with vendor.session(conn) as run:
            for shape in shapes:
                t0 = time.perf_counter()
                try:
                    plan = run(lambda cur, s=shape: vendor.explain(cur, s.sql, s.params))
                    self.stats.explains += 1
                    self._attach_sizes(run, vendor, plan, sizes, size_cap)
                    shape.plan = number_nodes(plan.to_json())
                except Exception as exc:
                    self.stats.explains += 1
                    shape.plan_error = f"{type(exc).__name__}: {exc}"[:1000]
                shape.explain_ms = round((time.perf_counter() - t0) * 1000, 3)
                shape.table_rows = {t: sizes[t] for t in _relations(shape.plan) if t in sizes}

    def _attach_sizes(
        self, run: Any, vendor: Vendor, plan: PlanNode, sizes: dict[str, list[Any]], cap: int
    ) -> None:
        """Table sizes for every fully scanned relation, looked up once per request."""
        stack = [plan]
        while stack:
            node = stack.pop()
            stack.extend(node.children)
            if node.kind != FULL_SCAN or not node.relation or node.relation in sizes:
                continue
            try:
                sizes[node.relation] = list(
                    run(lambda cur, t=node.relation: vendor.table_rows(cur, t, cap))
                )
                self.stats.size_lookups += 1
            except Exception as exc:
                sizes[node.relation] = [None, False, f"{type(exc).__name__}: {exc}"[:300]]

    # -- record -----------------------------------------------------------------------------

    def to_record(self, max_shapes: int) -> dict[str, Any]:
        shapes = []
        for shape in self.ordered_shapes():
            stored_params = encode_params(shape.params)
            shapes.append(
                {
                    "id": shape.id,
                    "alias": shape.alias,
                    "vendor": self.vendors.get(shape.alias, "?"),
                    "kind": shape.kind,
                    "many": shape.many,
                    "fingerprint": shape.fingerprint,
                    "sql": shape.sql,
                    "params": stored_params,
                    "params_rebuildable": params_rebuildable(stored_params),
                    "count": shape.count,
                    "errors": shape.errors,
                    "total_ms": round(shape.total_s * 1000, 3),
                    "max_ms": round(shape.max_s * 1000, 3),
                    "lines": [
                        {**frame_json(*where), "count": n}
                        for where, n in shape.lines.most_common(5)
                    ],
                    "stack": [frame_json(*f) for f in shape.stack],
                    "plan": shape.plan,
                    "plan_error": shape.plan_error,
                    "skipped": shape.skipped,
                    "explain_ms": shape.explain_ms,
                    "table_rows": shape.table_rows,
                }
            )
            shape.params = None  # live objects are not kept past the request
        return {
            "vendors": dict(self.vendors),
            "statements": self.statements,
            "other_statements": self.other,
            "query_ms": round(self.query_s * 1000, 3),
            "shapes": shapes,
            "explains": self.stats.explains,
            "size_lookups": self.stats.size_lookups,
            "explain_ms": round(self.stats.explain_s * 1000, 3),
            "max_shapes": max_shapes,
            "notes": list(self.stats.notes),
        }


def _relations(plan: dict[str, Any] | None) -> set[str]:
    out: set[str] = set()
    stack = [plan] if plan else []
    while stack:
        node = stack.pop()
        if node.get("relation"):
            out.add(node["relation"])
        stack.extend(node.get("children") or ())
    return out
