"""Capture every statement of a request, group them by shape, EXPLAIN each shape once.

Finding the request's statements, on WSGI and ASGI alike:

* One process-wide function, :func:`_dispatch`, sits first in the ``execute_wrappers``
  (Django's documented hook) of every connection the panel meets: the request thread's at
  the start (WSGI), those of asgiref's executor thread where the request's sync view and
  async ORM calls run (ASGI, set up by the panel before the view), and any connection opened
  later (``connection_created``). It stays installed and does nothing unless the current
  *context* carries a capture session: a ContextVar set when the request starts.
  ContextVars follow the request into asgiref's executor threads, so concurrent ASGI
  requests sharing one thread and one connection each see only their own statements
  (thread identity does not identify a request under ASGI). A thread the view starts is
  followed only when started with ``contextvars.copy_context()``.
* EXPLAIN runs on the connection where the statement ran, while the first instance's
  *live* parameters (their driver types intact) are still there: at the end of the view,
  in the request's thread (WSGI: the request thread; ASGI: the panel hops into asgiref's
  thread-sensitive executor, where the sync view and the async ORM ran, before the toolbar
  takes over in the event loop), highest impact first. A statement run on any other
  connection (``sync_to_async(thread_sensitive=False)``, a thread with a copied context)
  is explained right after its first successful run: that connection cannot be reached
  later.
* Every panel statement runs on ``connection.create_cursor()``, a raw DB-API cursor: it
  bypasses Django's ``CursorWrapper``, so execute wrappers, ``connection.queries`` /
  ``assertNumQueries`` and the toolbar's SQL panel (which patches ``connection.cursor``)
  never see them.
* Every panel statement runs where the database refuses writes, and is rolled back
  (``Vendor.session``): a write it attempts shows as :data:`WRITES_REFUSED`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import connections
from django.db.backends.signals import connection_created

from ..blame import PROJECT as PROJECT_BLAME
from ..blame import SCOPE as SCOPE_BLAME
from ..blame import SUSPENDABLE, blame
from ..conf import get_config
from .findings import match_count_cap, plan_findings, without_limit
from .params import encode_params, params_rebuildable
from .plans import FULL_SCAN, PlanNode, number_nodes
from .record import ExplainRecord, ShapeRecord
from .shapes import _SQL_INFO, sql_info
from .sites import (
    ASGI_BOUNDARY,
    Hint,
    Site,
    classify,
    make_hint,
    site_json,
    site_of,
    stack_of,
    task_issuer,
    walk,
)
from .sites import PROJECT as SITE_PROJECT
from .vendors import PostgreSQL, Vendor, vendor_for
from .vendors.base import WRITES_REFUSED, NotExplained
from .vendors.mysql import current_database
from .verify import parse_ddl, verify

# --- the dispatcher -------------------------------------------------------------------------

_clock = time.perf_counter
_getframe = sys._getframe

_SESSION: contextvars.ContextVar[CaptureSession | None] = contextvars.ContextVar(
    "debug_toolbar_perf.explain.session", default=None
)


def current_session() -> CaptureSession | None:
    """The capture session of the current context (request), if one is recording."""
    return _SESSION.get()


def _dispatch(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """The one execute wrapper: times and records the statement for the current context's
    session. Runs for every statement of a measured request: kept to the minimum."""
    session = _SESSION.get()
    if session is None or not session.active:
        return execute(sql, params, many, context)
    failed = True
    start = _clock()
    try:
        result = execute(sql, params, many, context)
        failed = False
        return result
    finally:
        elapsed = _clock() - start
        early = None
        try:
            with session._lock:
                early = session._record(sql, params, many, context, elapsed, failed)
        except Exception as exc:  # never break the user's query; say so in the panel
            session._unrecorded(exc)
        if early is not None:
            session._explain_early(early, context["connection"])


def _add_dispatcher(connection: Any) -> None:
    wrappers = connection.execute_wrappers
    if not any(w is _dispatch for w in wrappers):
        # First, so that a project's ``with connection.execute_wrapper(w):`` (which pops
        # the *last* wrapper on exit) never removes ours, nor we theirs.
        wrappers.insert(0, _dispatch)


def _on_connection_created(sender: Any, connection: Any, **kwargs: Any) -> None:
    _add_dispatcher(connection)


_listening = False


def _listen() -> None:
    """Every connection opened from now on, in any thread, gets the dispatcher."""
    global _listening
    if not _listening:
        connection_created.connect(
            _on_connection_created, dispatch_uid="debug_toolbar_perf.explain.dispatch"
        )
        _listening = True


def install(aliases: Iterable[str] | None = None) -> dict[str, Any]:
    """Put the dispatcher on this thread's connections (idempotent); return them by alias.

    Also makes every connection opened later, in any thread, get it as it opens.
    """
    _listen()
    found: dict[str, Any] = {}
    for alias in aliases if aliases is not None else connections:
        try:
            conn = connections[alias]
        except Exception:  # a broken alias: its statements cannot be captured anyway
            continue
        _add_dispatcher(conn)
        found[alias] = conn
    return found


def dispatcher_installed(connection: Any) -> bool:
    return any(w is _dispatch for w in connection.execute_wrappers)


# --- the session --------------------------------------------------------------------------


@dataclass(eq=False, slots=True)  # slots: its fields are read on every statement
class Shape:
    """Every statement of one shape on one alias, with the first instance kept live."""

    id: str
    alias: str
    fingerprint: str
    sql: str
    params: Any  # live driver objects, dropped after build_record
    kind: str
    many: bool
    connection: Any = None  # where the first instance ran; dropped after the EXPLAIN
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    errors: int = 0
    lines: Counter[Site] = field(default_factory=Counter)
    stack: list[Site] = field(default_factory=list)
    hints: list[Hint] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    plan_error: str | None = None
    skipped: str | None = None
    explained: bool = False  # an EXPLAIN was attempted (plan or plan_error set)
    explain_ms: float | None = None
    table_rows: dict[str, list[Any]] = field(default_factory=dict)
    #: The schema search path in force when the first instance ran (PostgreSQL), if known.
    schema: str | None = None
    #: CREATE INDEX suggestion -> what the planner said of it (:mod:`.verify`).
    index_checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``[rows matching, cap]``: how many rows a LIMIT-ed, filtered scan's statement
    #: returns without its LIMIT, counted up to ``cap`` (see ``findings.match_count_cap``).
    limit_matches: list[int] | None = None


@dataclass
class ExplainStats:
    explains: int = 0  # EXPLAIN statements issued
    size_lookups: int = 0
    explain_s: float = 0.0
    early: int = 0  # shapes explained right away, on a connection of another thread
    notes: list[str] = field(default_factory=list)


#: The frames between :meth:`CaptureSession._record` and the caller of the wrappers
#: (Django's ``_execute_with_wrappers``): _record <- _dispatch <- caller.
_BASE = 2
#: Places remembered per shape (an N+1 is often issued from two or three lines).
MAX_HINTS = 4


def _is_project_code(code: Any) -> bool:
    return classify(code) == SITE_PROJECT


class CaptureSession:
    """One request's statements on every alias (or on ``aliases``)."""

    def __init__(
        self,
        aliases: list[str] | None = None,
        *,
        max_shapes: int = 50,
        size_cap: int = 1_000_000,
        timeout_ms: int = 5_000,
        verify_indexes: bool = True,
    ) -> None:
        self.aliases = list(aliases if aliases is not None else connections)
        self._alias_set = frozenset(self.aliases)
        self.max_shapes = max_shapes
        self.size_cap = size_cap
        self.timeout_ms = timeout_ms
        self.verify_indexes = verify_indexes
        self.shapes: dict[tuple[str, str], Shape] = {}
        self.vendors: dict[str, str] = {}
        self.statements = 0
        self.other = 0
        self.unrecorded = 0
        self.query_s = 0.0
        self.stats = ExplainStats()
        self.active = False
        #: Connections of the thread where :meth:`explain_all` will run, by alias.
        self.home: dict[str, Any] = {}
        #: The asyncio task running the request (ASGI) and the event loop's thread: where
        #: async callers are found.
        self.task: Any = None
        self.loop_thread: int | None = None
        self._budget = max_shapes
        self._sizes: dict[tuple[str, str], list[Any]] = {}
        self._token: contextvars.Token[CaptureSession | None] | None = None
        self._lock = threading.Lock()
        self.explain_started = False

    # -- capture --------------------------------------------------------------------------

    def start(self, home: dict[str, Any] | None = None, task: Any = None) -> None:
        """Start recording in the current context.

        ``home``: the connections of the thread where the end-of-view EXPLAINs will run
        (ASGI: found by the panel in asgiref's executor thread). By default, this thread's.
        """
        _listen()
        self.home = install(self.aliases) if home is None else dict(home)
        self.task = task
        self.loop_thread = threading.get_ident() if task is not None else None
        self._token = _SESSION.set(self)
        self.active = True

    def stop_capture(self) -> None:
        """Stop recording (idempotent); forget the frames and task kept for locating callers."""
        self.active = False
        with self._lock:
            self.task = None
            for shape in self.shapes.values():
                shape.hints.clear()
        token, self._token = self._token, None
        if token is not None:
            try:
                _SESSION.reset(token)
            except ValueError:
                # Called from a copy of the request's context (asgiref's thread): the
                # request's own context is left to the panel, which stops there too.
                self._token = token

    def capture(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        """Run and record one statement as the dispatcher does (for direct use)."""
        token = _SESSION.set(self)
        try:
            return _dispatch(execute, sql, params, many, context)
        finally:
            _SESSION.reset(token)

    def _unrecorded(self, exc: BaseException) -> None:
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
    ) -> Shape | None:
        """Count one statement; return its shape when it must be explained right now."""
        conn = context["connection"]
        alias = conn.alias
        if alias not in self._alias_set:
            return None
        if type(sql) is not str:
            try:
                sql = sql.as_string(conn.connection)
            except Exception:
                sql = str(sql)
        self.statements += 1
        self.query_s += elapsed
        info = _SQL_INFO.get(sql)
        kind, shape_id, normal = info if info is not None else sql_info(sql)
        if kind == "other":
            self.other += 1
            return None
        key = (alias, shape_id)
        shape = self.shapes.get(key)
        if shape is None:
            shape = Shape(
                id=f"{alias}-{shape_id}",
                alias=alias,
                fingerprint=normal,
                sql=sql,
                params=params[0] if many and params else params,
                kind=kind,
                many=many,
                connection=conn,
            )
            shape.stack = stack_of(_getframe(_BASE), self.task, self.loop_thread)
            self.shapes[key] = shape
            if alias not in self.vendors:
                self.vendors[alias] = conn.vendor
            if not failed:
                shape.schema = _schema(conn)
        elif shape.count == shape.errors and not failed:
            # Every earlier instance failed: keep this one, which ran, for the EXPLAIN.
            shape.sql = sql
            shape.params = params[0] if many and params else params
            shape.connection = conn
            shape.schema = _schema(conn)
        shape.count += 1
        shape.total_s += elapsed
        if elapsed > shape.max_s:
            shape.max_s = elapsed
        if failed:
            shape.errors += 1
        for hint in shape.hints:  # a repeat from a place seen before: no walk (see .sites)
            depth = hint.depth
            try:
                found = _getframe(_BASE + depth)
            except ValueError:
                continue
            if (
                found.f_code is hint.code
                and found.f_lasti == hint.lasti
                and _getframe(_BASE - 1 + depth).f_code is hint.callee
                and (hint.frame is None or found is hint.frame)
            ):
                shape.lines[hint.site] += 1
                break
        else:
            shape.lines[self._issuer(shape)] += 1
        if (
            not failed
            and kind == "select"
            and not shape.explained
            and shape.skipped is None
            and conn is not self.home.get(alias)
        ):
            # Another thread's connection: unreachable at the end of the view.
            if self._budget <= 0:
                shape.skipped = self._over_budget()
                return None
            self._budget -= 1
            shape.explained = True
            return shape
        return None

    def _issuer(self, shape: Shape) -> Site:
        """The line that issued the statement being recorded, by a walk (see :mod:`.sites`);
        remembers where it ended as a hint for the next statement of the shape."""
        hints = shape.hints
        frame = _getframe(_BASE + 1)
        stop = ASGI_BOUNDARY if self.task is not None else None
        blamed = blame(frame, _is_project_code, stop)  # the shared rule (..blame)
        if blamed is not None and blamed.kind != PROJECT_BLAME:
            if blamed.kind == SCOPE_BLAME and self.task is not None:
                return site_of(task_issuer(self.task, self.loop_thread) or blamed.frame)
            if blamed.depth and not blamed.frame.f_code.co_flags & SUSPENDABLE:
                below = _getframe(_BASE + blamed.depth)
                hints.insert(0, Hint(blamed.depth, blamed.frame, below.f_code, blamed.where, True))
                del hints[MAX_HINTS:]
            return blamed.where
        found, depth, project = walk(frame, stop)
        if not project and self.task is not None:
            # ASGI, no project frame in this thread: the caller is an awaiting coroutine,
            # which moves from one await to the next; never remembered.
            awaiting = task_issuer(self.task, self.loop_thread)
            return site_of(awaiting or found or frame)
        if found is None:
            return site_of(frame)
        hint = make_hint(found, depth, project, _getframe(_BASE + depth) if depth else None)
        if hint is not None:
            hints.insert(0, hint)  # a shape issued from a few places: remember each
            del hints[MAX_HINTS:]
        return site_of(found)

    # -- explain ---------------------------------------------------------------------------

    def _over_budget(self) -> str:
        return f"over the limit of {self.max_shapes} shapes explained per request"

    def ordered_shapes(self) -> list[Shape]:
        """Highest impact first: count x total time."""
        return sorted(self.shapes.values(), key=lambda s: (s.total_s, s.count), reverse=True)

    def explain_all(self, max_shapes: int | None = None, size_cap: int | None = None) -> None:
        """EXPLAIN each SELECT shape not explained yet, on its alias's connection in this
        thread (the request's), while the parameters are live. Idempotent."""
        if self.explain_started:
            return
        self.explain_started = True
        if max_shapes is not None and max_shapes != self.max_shapes:
            self._budget += max_shapes - self.max_shapes
            self.max_shapes = max_shapes
        if size_cap is not None:
            self.size_cap = size_cap
        started = time.perf_counter()
        todo: dict[str, list[Shape]] = {}
        for shape in self.ordered_shapes():
            if shape.explained or shape.skipped:
                continue
            if shape.kind != "select":
                shape.skipped = "not a SELECT: not explained automatically"
                continue
            if shape.errors == shape.count:
                shape.skipped = "the statement failed"
                continue
            if self._budget <= 0:
                shape.skipped = self._over_budget()
                continue
            self._budget -= 1
            todo.setdefault(shape.alias, []).append(shape)
        for alias, shapes in todo.items():
            self._explain_on(connections[alias], shapes)
        self.stats.explain_s += time.perf_counter() - started

    def _explain_early(self, shape: Shape, conn: Any) -> None:
        """EXPLAIN a shape on the connection it just ran on (another thread's)."""
        started = time.perf_counter()
        try:
            self._explain_on(conn, [shape])
            self.stats.early += 1
        except Exception as exc:  # never break the user's query
            shape.plan_error = f"{type(exc).__name__}: {exc}"[:1000]
        finally:
            self.stats.explain_s += time.perf_counter() - started

    def _explain_on(self, conn: Any, shapes: list[Shape]) -> None:
        vendor = vendor_for(conn)
        reason = vendor.cannot_run(conn)
        for shape in shapes:
            shape.explained = True
        if reason:
            for shape in shapes:
                shape.skipped = reason
            note = f"{conn.alias}: {reason}"
            if note not in self.stats.notes:
                self.stats.notes.append(note)
            return
        plans: dict[str, PlanNode] = {}
        with vendor.session(conn, self.timeout_ms) as run:
            now = (
                run(lambda cur: vendor.schema(conn, cur)) if any(s.schema for s in shapes) else None
            )
            for shape in shapes:
                if shape.schema == now or (vendor.schema_is_database and now is None):
                    shape.schema = None  # explained as it is: no change needed (or possible)
                try:
                    self._explain_shape(run, vendor, conn.alias, shape, plans)
                finally:
                    if shape.schema is not None and vendor.schema_is_database and now:
                        # ``USE`` lasts: back to the database the connection was on
                        run(partial(vendor.use_schema, schema=now))
        for shape in shapes:
            if self.verify_indexes and shape.id in plans:
                self._verify(conn, vendor, shape, plans[shape.id])
            shape.connection = None

    def _explain_shape(
        self, run: Any, vendor: Vendor, alias: str, shape: Shape, plans: dict[str, PlanNode]
    ) -> None:
        """EXPLAIN one shape (under its own schema), with its table sizes and match count."""
        # Sizes are per table in the schema/database the shape ran in.
        scope = alias if shape.schema is None else f"{alias} {shape.schema}"
        t0 = time.perf_counter()
        try:
            plan: PlanNode = run(partial(_explain, vendor, shape))
            self.stats.explains += 1
            self._attach_sizes(run, vendor, scope, plan)
            shape.plan = number_nodes(plan.to_json())
            plans[shape.id] = plan
        except NotExplained as exc:
            shape.skipped = str(exc)
        except Exception as exc:
            self.stats.explains += 1
            if vendor.refused_write(exc):
                shape.skipped = WRITES_REFUSED
            else:
                shape.plan_error = f"{type(exc).__name__}: {exc}"[:1000]
        shape.explain_ms = round((time.perf_counter() - t0) * 1000, 3)
        shape.table_rows = {
            t: self._sizes[(scope, t)] for t in _relations(shape.plan) if (scope, t) in self._sizes
        }
        if shape.plan is not None:
            self._count_matches(run, vendor, shape)

    def _verify(self, conn: Any, vendor: Vendor, shape: Shape, plan: PlanNode) -> None:
        """Ask the planner about each index the findings would suggest (:mod:`.verify`)."""
        draft = {
            "vendor": conn.vendor,
            "sql": shape.sql,
            "params": encode_params(shape.params),
            "plan": shape.plan,
            "table_rows": shape.table_rows,
            "limit_matches": shape.limit_matches,
        }
        for finding in plan_findings(draft, get_config()["EXPLAIN"]):
            ddl = finding.get("suggestion")
            if not ddl or ddl in shape.index_checks:
                continue
            parsed = parse_ddl(ddl)
            size = shape.table_rows.get(parsed[1]) if parsed else None
            shape.index_checks[ddl] = verify(
                vendor,
                conn,
                ddl,
                partial(_explain, vendor, shape),
                plan,
                int(size[0]) if size and isinstance(size[0], int) else None,
                self.timeout_ms,
                shape.schema if vendor.schema_is_database else None,
            )

    def _count_matches(self, run: Any, vendor: Vendor, shape: Shape) -> None:
        """For a full scan a LIMIT stops after a filter, count the rows that match (up to
        the cap that decides the finding): the plan does not say how many rows it reads."""
        draft = {
            "vendor": vendor.name,
            "sql": shape.sql,
            "params": encode_params(shape.params),
            "plan": shape.plan,
        }
        size = None
        for rows in shape.table_rows.values():
            size = rows[0] if isinstance(rows[0], int) else None
        found = match_count_cap(draft, get_config()["EXPLAIN"], size)
        sql = without_limit(shape.sql, found[1]) if found else None
        if found is None or sql is None:
            return
        try:
            matches = run(lambda cur: vendor.count_rows(cur, sql, shape.params, self.timeout_ms))
        except Exception:  # not known: the finding says so
            return
        if matches is not None:
            shape.limit_matches = [int(matches), found[1]]

    def _attach_sizes(self, run: Any, vendor: Vendor, alias: str, plan: PlanNode) -> None:
        """Table sizes for every fully scanned relation, looked up once per request."""
        stack = [plan]
        while stack:
            node = stack.pop()
            stack.extend(node.children)
            key = (alias, node.relation or "")
            if node.kind != FULL_SCAN or not node.relation or key in self._sizes:
                continue
            try:
                self._sizes[key] = list(
                    run(lambda cur, t=node.relation: vendor.table_rows(cur, t, self.size_cap))
                )
                self.stats.size_lookups += 1
            except Exception as exc:
                self._sizes[key] = [None, False, f"{type(exc).__name__}: {exc}"[:300]]

    # -- record -----------------------------------------------------------------------------

    def to_record(self, max_shapes: int | None = None) -> ExplainRecord:
        shapes: list[ShapeRecord] = []
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
                        {**site_json(*where), "count": n} for where, n in shape.lines.most_common(5)
                    ],
                    "stack": [site_json(*f) for f in shape.stack],
                    "plan": shape.plan,
                    "plan_error": shape.plan_error,
                    "skipped": shape.skipped,
                    "explain_ms": shape.explain_ms,
                    "table_rows": shape.table_rows,
                    "index_checks": shape.index_checks,
                    "limit_matches": shape.limit_matches,
                }
            )
            shape.params = None  # live objects are not kept past the request
            shape.connection = None
        return {
            "vendors": dict(self.vendors),
            "statements": self.statements,
            "other_statements": self.other,
            "query_ms": round(self.query_s * 1000, 3),
            "shapes": shapes,
            "explains": self.stats.explains,
            "size_lookups": self.stats.size_lookups,
            "explain_ms": round(self.stats.explain_s * 1000, 3),
            "explained_early": self.stats.early,
            "max_shapes": self.max_shapes if max_shapes is None else max_shapes,
            "notes": list(self.stats.notes),
        }


def _schema(conn: Any) -> str | None:
    """The search path (PostgreSQL) or the current database (MariaDB/MySQL, which a view may
    change with ``USE``) now. Runs under the session's lock, inside the dispatcher: it must
    not go through Django's cursor (``vendor_for`` on MariaDB may query the server through
    it, re-entering the dispatcher)."""
    if conn.vendor == "postgresql":
        return PostgreSQL().schema(conn)
    if conn.vendor == "mysql":
        return current_database(conn)
    return None


def _explain(vendor: Vendor, shape: Shape, cursor: Any) -> PlanNode:
    if shape.schema is not None:  # the view changed it since: back to the statement's own
        vendor.use_schema(cursor, shape.schema)
    return vendor.explain(cursor, shape.sql, shape.params)


def current_task() -> Any:
    """The running asyncio task, or None outside an event loop."""
    with contextlib.suppress(RuntimeError):
        return asyncio.current_task()
    return None


def _relations(plan: dict[str, Any] | None) -> set[str]:
    out: set[str] = set()
    stack = [plan] if plan else []
    while stack:
        node = stack.pop()
        if node.get("relation"):
            out.add(node["relation"])
        stack.extend(node.get("children") or ())
    return out
