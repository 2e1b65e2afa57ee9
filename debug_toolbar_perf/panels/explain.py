"""ExplainPanel: the plan of every distinct query shape of the request, with findings.

Thin: capture and EXPLAIN live in ``engines/explain``, the plan model and the
findings in ``analysis/plans*``. Everything shown is computed from the stored
stats. The panel stays synchronous: under ASGI the toolbar disables it, because
the EXPLAINs must run on the request's own connection while the view's
parameters are live, which the end-of-request hooks cannot do in the event loop.
"""

from __future__ import annotations

from typing import Any

import sqlparse
from debug_toolbar.forms import SignedDataForm
from django.http import HttpRequest, HttpResponse
from django.urls import path

from ..analysis.plans_findings import analyse
from ..conf import get_config
from ..engines.explain.capture import CaptureSession
from ..scope import ViewTarget
from .base import PerfPanel


class ExplainPanel(PerfPanel):
    title = "EXPLAIN"
    template = "debug_toolbar_perf/panels/explain.html"
    extra_scripts = ("debug_toolbar_perf/js/explain.js",)

    def start(self, request: HttpRequest, target: ViewTarget) -> CaptureSession:
        session = CaptureSession()
        session.start()
        return session

    def stop(self, session: CaptureSession) -> None:
        session.stop_capture()
        cfg = get_config()["EXPLAIN"]
        session.explain_all(int(cfg["MAX_SHAPES"]), int(cfg["SIZE_COUNT_CAP"]))

    def build_record(
        self, request: HttpRequest, response: HttpResponse, session: CaptureSession
    ) -> dict[str, Any]:
        return session.to_record(int(get_config()["EXPLAIN"]["MAX_SHAPES"]))

    def get_context(self, stats: dict[str, Any]) -> dict[str, Any]:
        record = stats["record"]
        cfg = get_config()["EXPLAIN"]
        shapes = analyse(record, cfg)
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
                and bool(request_id)
            )
            shape["signed"] = (
                SignedDataForm.sign(
                    {"request_id": request_id, "panel_id": self.panel_id, "shape": shape["id"]}
                )
                if request_id
                else ""
            )
        findings = sum(len(s["findings"]) for s in shapes)
        return {
            "record": record,
            "shapes": shapes,
            "finding_count": findings,
            "explained": _explained(record),
            "allow_writes": bool(cfg["ALLOW_ANALYZE_WRITES"]),
        }

    def subtitle(self, stats: dict[str, Any]) -> str:
        record = stats.get("record") or {}
        findings = sum(len(s["findings"]) for s in analyse(record, get_config()["EXPLAIN"]))
        return f"{_explained(record)} shapes explained · {findings} findings"

    @classmethod
    def get_urls(cls) -> list[Any]:
        from ..engines.explain.views import explain_analyze

        return [
            *super().get_urls(),
            path("perf/explain/analyze/", explain_analyze, name="perf_explain_analyze"),
        ]


def _explained(record: dict[str, Any]) -> int:
    return sum(1 for s in record.get("shapes") or [] if s.get("plan"))
