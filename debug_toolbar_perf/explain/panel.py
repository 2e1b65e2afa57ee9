"""ExplainPanel: the plan of every distinct query shape of the request, with findings.

Thin: capture and EXPLAIN live in ``capture.py`` (with ``sites.py``, ``shapes.py``,
``params.py`` and ``vendors/``), the plan model in ``plans.py``, the findings in
``findings.py`` and ``indexes.py``, gathered by ``report.py``. Everything shown is
computed from the stored stats.

The EXPLAINs must run on the connection where the statements ran, while the
view's parameters are live. Under WSGI that is the request thread, at the end of
the view. Under ASGI the database work of the request (a sync view, the async
ORM, ``sync_to_async``) runs in asgiref's thread-sensitive executor thread and the
end of the request in the event loop, where a database call is not allowed: the
panel finds that thread's connections before the view (:meth:`ExplainPanel.astart`)
and hops back into it after the view (:meth:`ExplainPanel.astop`). Nothing touches
the database in the event loop.
"""

from __future__ import annotations

from typing import Any

import sqlparse
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from ..base import PerfPanel
from ..baseline import Comparison
from ..conf import get_config
from ..endpoints import ANALYZE_TEMPLATE, sign_once
from ..scope import ViewTarget
from .analyze import AnalyzeRefused, run_analyze
from .capture import CaptureSession, current_task, install
from .diff import diff
from .findings import plan_findings
from .record import ExplainRecord
from .report import ExplainReport, report
from .vendors.base import WRITES_REFUSED


class ExplainPanel(PerfPanel):
    title = "EXPLAIN"
    nav_icon = "debug_toolbar_perf/img/explain.svg"  # type: ignore[assignment]  # DDT types it None
    template = "debug_toolbar_perf/panels/explain.html"
    extra_scripts = ("debug_toolbar_perf/js/explain.js",)
    endpoints = ("perf_export", "perf_explain_analyze", "perf_csrf")

    def start(self, request: HttpRequest, target: ViewTarget) -> CaptureSession:
        cfg = get_config()["EXPLAIN"]
        session = CaptureSession(
            max_shapes=int(cfg["MAX_SHAPES"]),
            size_cap=int(cfg["SIZE_COUNT_CAP"]),
            timeout_ms=int(cfg["STATEMENT_TIMEOUT_MS"]),
            verify_indexes=bool(cfg["VERIFY_INDEXES"]),
        )
        if self.asgi:
            # The executor thread's connections come in astart; until then (and if that
            # fails) every shape is explained right after its first run, wherever it ran.
            session.start(home={}, task=current_task())
        else:
            session.start()
        return session

    async def astart(self, session: CaptureSession) -> None:
        """ASGI, before the view: the connections of the thread where the request's database
        work will run (asgiref's thread-sensitive executor), with the capture hook on them."""
        session.home = await sync_to_async(install)(session.aliases)

    async def astop(self, session: CaptureSession) -> None:
        """ASGI, after the view: stop recording in the request's own context, then EXPLAIN
        in the thread where the view's statements ran, on their connections."""
        session.stop_capture()
        await sync_to_async(session.explain_all)()

    def stop(self, session: CaptureSession) -> None:
        session.stop_capture()
        if session.explain_started:
            return  # ASGI: done in astop, in the executor thread
        if current_task() is not None:
            # ASGI, in the event loop (astop did not run): a database call here would
            # raise SynchronousOnlyOperation.
            session.stats.notes.append(
                "The end of the request ran in the event loop: shapes were not explained."
            )
            return
        session.explain_all()

    def build_record(
        self, request: HttpRequest, response: HttpResponse, session: CaptureSession
    ) -> ExplainRecord:
        return session.to_record(int(get_config()["EXPLAIN"]["MAX_SHAPES"]))

    def make_report(self, record: dict[str, Any]) -> ExplainReport:
        return report(record, get_config()["EXPLAIN"])

    def make_diff(self, record: dict[str, Any], base: dict[str, Any]) -> Comparison:
        return diff(record, base, get_config()["EXPLAIN"])

    def get_context(self, stats: dict[str, Any]) -> dict[str, Any]:
        record = stats["record"]
        cfg = get_config()["EXPLAIN"]
        found: ExplainReport = self.report(stats)
        shapes = [dict(s) for s in found.shapes]  # the report is shared: add to copies
        request_id = getattr(self.toolbar, "request_id", None)
        for shape in shapes:
            shape["sql_formatted"] = sqlparse.format(
                shape["sql"], reindent=True, keyword_case="upper"
            )
            can = shape["kind"] == "select" or bool(cfg["ALLOW_ANALYZE_WRITES"])
            shape["analyze_allowed"] = (
                can
                and shape.get("params_rebuildable", False)
                and not shape.get("many")
                and shape.get("skipped") != WRITES_REFUSED  # the database refused it already
                and bool(request_id)
            )
            shape["signed"] = (
                sign_once(
                    {"request_id": request_id, "panel_id": self.panel_id, "shape": shape["id"]}
                )
                if request_id
                else ""
            )
        return {
            "record": record,
            "shapes": shapes,
            "finding_count": found.finding_count,
            "explained": found.explained,
            "allow_writes": bool(cfg["ALLOW_ANALYZE_WRITES"]),
            "csrf_header": settings.CSRF_HEADER_NAME.removeprefix("HTTP_").replace("_", "-"),
        }

    def subtitle(self, stats: dict[str, Any]) -> str:
        return str(self.report(stats).subtitle)

    def analyze_shape(self, stats: dict[str, Any], shape_id: str) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of the on-demand EXPLAIN ANALYZE of one stored shape.

        The SQL and its typed parameters come from the stored stats, never the browser.
        An ``error`` key is rendered by the endpoint with the analyze template.
        """
        shapes = (stats.get("record") or {}).get("shapes") or []
        shape = next((s for s in shapes if s.get("id") == shape_id), None)
        if shape is None:
            return 404, {"error": "Unknown query shape."}
        cfg = get_config()["EXPLAIN"]
        try:
            result = run_analyze(
                shape,
                allow_writes=bool(cfg["ALLOW_ANALYZE_WRITES"]),
                timeout_ms=int(cfg["STATEMENT_TIMEOUT_MS"]),
            )
        except AnalyzeRefused as exc:
            return 403, {"error": str(exc), "refused": True}
        except (DatabaseError, NotImplementedError) as exc:
            return 200, {"error": f"{type(exc).__name__}: {exc}".strip()}
        findings = plan_findings(shape, cfg, plan=result["plan"])
        nodes = sorted({f["node"] for f in findings if f.get("node")})
        html = render_to_string(
            ANALYZE_TEMPLATE,
            {"result": result, "findings": findings, "finding_nodes": nodes, "shape": shape},
        )
        return 200, {"content": html, "findings": [f["code"] for f in findings]}
