"""LineMemoryPanel: the view's source, line by line, with the memory each line took.

Thin: the session (``session.py``, with a tracer from ``tracers/`` and a reading from
``sources.py``) measures the code ``targets.py`` picks, ``record.py`` stores it and
``report.py`` turns the stored record into memory_profiler's table.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponse

from ..availability import MEMORY_PROFILER, PSUTIL, EngineProblem
from ..base import ExportFile, PerfPanel, router_follower
from ..baseline import Comparison
from ..conf import get_config
from ..scope import ViewTarget, is_project_file
from .diff import diff
from .record import LineMemoryRecord


class LineMemoryPanel(PerfPanel):
    """memory_profiler's line-by-line table for the view's own code, per request."""

    title = "Line memory"
    nav_icon = "debug_toolbar_perf/img/line_memory.svg"  # type: ignore[assignment]  # DDT types it None
    template = "debug_toolbar_perf/panels/line_memory.html"
    export_formats: ClassVar[tuple[tuple[str, str], ...]] = (("txt", "memory_profiler text"),)

    def engine_problem(self) -> EngineProblem | None:
        """Only RSS off Linux needs an extra (psutil); memory-profiler is optional."""
        return _psutil_problem()

    @classmethod
    def check_warnings(cls) -> list[EngineProblem]:
        problem = _psutil_problem()
        return [problem] if problem else []

    def enabled_by_default(self) -> bool:
        """Off on 3.10/3.11 (a settrace hook costs ~x2 on template-heavy pages), on for 3.12+."""
        configured = get_config()["LINE_MEMORY"]["ENABLED_BY_DEFAULT"]
        if configured is None:
            return sys.version_info >= (3, 12)
        return bool(configured)

    def start(self, request: HttpRequest, target: ViewTarget) -> Any:
        from .session import LineMemorySession
        from .targets import collect_targets

        conf = get_config()["LINE_MEMORY"]
        targets, problems = collect_targets(
            target.codes, target.label, conf["FUNCTIONS"], is_project_file
        )
        session = LineMemorySession(
            targets,
            backend=conf["BACKEND"],
            max_events=conf["MAX_LINE_EVENTS"],
            follow_depth=conf["FOLLOW_DEPTH"],
            is_project=is_project_file,
        )
        session.notes.extend(problems)
        session.memory_profiler = MEMORY_PROFILER.installed()
        follower = router_follower(self.toolbar)
        if follower is not None:  # the view is a router: trace the view it hands on to
            why = f"handler, followed from {target.label.rsplit('.', 1)[-1]}"

            def trace_handler(handler: ViewTarget) -> None:
                if follower.handler_started:
                    return  # already running: its lines cannot be traced from the start
                for code in handler.codes:
                    session.add_target(code, 0, why)

            follower.on_found(trace_handler)
        self._sync_thread = False
        if self.asgi and sys.version_info < (3, 12):
            # sys.settrace reaches one thread. start() runs in the event loop's thread, which
            # runs an async view; a sync view runs later in asgiref's executor thread, which
            # astart() reaches. (sys.monitoring on 3.12+ fires in every thread.)
            is_async = any(c.co_flags & inspect.CO_COROUTINE for c in target.codes)
            helpers = len(targets) > len(target.codes) or conf["FOLLOW_DEPTH"] > 0
            self._sync_thread = bool(targets) and (not is_async or helpers)
            return session.start(here=is_async)
        session.start()
        if not self.asgi and sys.version_info < (3, 12):
            # Under WSGI an async view runs through async_to_sync, in an event loop in a new
            # thread: sys.settrace in this thread cannot reach it, threading.settrace can.
            if any(c.co_flags & inspect.CO_COROUTINE for c in target.codes):
                session.trace_new_threads()
        return session

    async def astart(self, session: Any) -> None:
        """3.10/3.11 under ASGI: trace the executor thread that runs sync code of this request.

        ``sync_to_async(thread_sensitive=True)`` runs in the same thread as Django's call of
        a sync view (one thread per request under Django's ASGI handler, the test's own
        thread under ``AsyncClient``), so the trace function is installed there first.
        """
        if getattr(self, "_sync_thread", False) and session.problem is None:
            from asgiref.sync import sync_to_async

            await sync_to_async(session.attach_thread, thread_sensitive=True)()

    async def astop(self, session: Any) -> None:
        if getattr(self, "_sync_thread", False) and session.problem is None:
            from asgiref.sync import sync_to_async

            await sync_to_async(session.detach_thread, thread_sensitive=True)()

    def stop(self, session: Any) -> None:
        session.stop()

    def build_record(
        self, request: HttpRequest, response: HttpResponse, session: Any
    ) -> LineMemoryRecord | None:
        """The record, or None with the error shown if the engine failed mid-request.

        After a fault inside the tracer the figures are incomplete (tracing stopped part
        way), so the panel shows the error alone rather than a partial table.
        """
        from .record import build_record

        if session.errors:
            self._errors.extend(session.errors)
            return None
        record = build_record(session)
        record["asgi"] = self.asgi
        return record

    def make_report(self, record: dict[str, Any]) -> Any:
        from .report import report

        return report(record)

    def make_diff(self, record: dict[str, Any], base: dict[str, Any]) -> Comparison:
        return diff(record, base)

    def get_context(self, stats: dict[str, Any]) -> dict[str, Any]:
        return {"record": stats["record"], **self.report(stats).table}

    def subtitle(self, stats: dict[str, Any]) -> str:
        return str(self.report(stats).subtitle)

    def export(self, fmt: str, stats: dict[str, Any]) -> ExportFile | None:
        from .report import text_report

        if fmt != "txt" or not stats.get("record"):
            return None
        return ExportFile(
            "line-memory.txt", "text/plain; charset=utf-8", text_report(stats["record"]).encode()
        )


def _psutil_problem() -> EngineProblem | None:
    from .heap import why_unavailable
    from .sources import rss_needs_psutil

    backend = get_config()["LINE_MEMORY"]["BACKEND"]
    if backend == "auto" and why_unavailable() is not None:
        backend = "rss"  # what "auto" measures here
    if backend != "rss" or not rss_needs_psutil() or PSUTIL.installed():
        return None
    return EngineProblem(
        "LineMemoryPanel needs psutil, which is not installed, to read RSS where "
        "/proc/self/statm does not exist (or set LINE_MEMORY.BACKEND to 'tracemalloc').",
        PSUTIL.fix,
    )
