"""ModelInstancesPanel: every model instance the request built, where, and how big.

Thin: the hook (``hook.py``) counts through one process-wide hook gated per
request into a ``collector.py``; ``record.py`` stores it and ``report.py`` turns the stored
record into findings. Pympler is needed only for sizes and the heap summary, so
its absence is a note in the panel, not a block.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from ..availability import PYMPLER, EngineProblem
from ..base import PerfPanel
from ..baseline import Comparison
from ..conf import get_config
from ..endpoints import signed_url
from ..scope import ViewTarget
from .collector import Collector
from .diff import diff
from .hook import Session
from .record import InstancesRecord, build_record
from .report import report

PYMPLER_FIX = PYMPLER.fix


class ModelInstancesPanel(PerfPanel):
    """Counts per model, creation call sites, sizes and survivors of one request."""

    title = "Model instances"
    nav_icon = "debug_toolbar_perf/img/instances.svg"  # type: ignore[assignment]  # DDT types it None
    template = "debug_toolbar_perf/panels/instances.html"
    extra_scripts = ("debug_toolbar_perf/js/instances.js",)
    endpoints = ("perf_export", "perf_instances_heap")

    @classmethod
    def check_warnings(cls) -> list[EngineProblem]:
        """Counting needs only Django; sizes and the heap summary need Pympler."""
        if PYMPLER.installed():
            return []
        return [
            EngineProblem(
                "ModelInstancesPanel needs Pympler, which is not installed, for instance "
                "sizes and the heap summary (counts and call sites work without it).",
                PYMPLER.fix,
            )
        ]

    def _sql_queries(self) -> list[Any] | None:
        """The SQL panel's live query list (filled during the request, either order)."""
        try:
            panel = self.toolbar.get_panel_by_id("SQLPanel")
        except KeyError:
            return None
        if not panel.enabled:
            return None
        queries = getattr(panel, "_queries", None)
        return queries if isinstance(queries, list) else None

    def start(self, request: HttpRequest, target: ViewTarget) -> Session:
        cfg = get_config()["INSTANCES"]
        pympler = PYMPLER.installed()
        collector = Collector(
            capture_sites=bool(cfg["SITES"]),
            site_every=int(cfg["STACK_SAMPLE_EVERY"]),
            size_sample=int(cfg["SIZE_SAMPLE"]) if pympler else 0,
            alive_sample=int(cfg["ALIVE_SAMPLE"]),
            queries=self._sql_queries(),
        )
        return Session(collector).start()

    def stop(self, session: Session) -> None:
        session.stop()

    def build_record(
        self, request: HttpRequest, response: HttpResponse, session: Session
    ) -> InstancesRecord:
        cfg = get_config()["INSTANCES"]
        return build_record(
            session.collector,
            queries=session.collector.queries,
            threshold=int(cfg["THRESHOLD"]),
            n_plus_one=int(cfg["N_PLUS_ONE"]),
            pympler=session.collector.size_sample > 0 or PYMPLER.installed(),
            full_gc=bool(cfg["FULL_GC"]),
        )

    def make_report(self, record: dict[str, Any]) -> dict[str, Any]:
        return report(record)

    def make_diff(self, record: dict[str, Any], base: dict[str, Any]) -> Comparison:
        return diff(record, base)

    def get_context(self, stats: dict[str, Any]) -> dict[str, Any]:
        ctx = dict(self.report(stats))
        ctx["heap_url"] = self.heap_summary_url()
        ctx["pympler_fix"] = PYMPLER_FIX
        return ctx

    def subtitle(self, stats: dict[str, Any]) -> str:
        return str(self.report(stats)["subtitle_text"])

    def heap_summary_url(self) -> str | None:
        request_id = getattr(self.toolbar, "request_id", None)
        if not request_id:
            return None
        return signed_url("perf_instances_heap", {"request_id": request_id, "action": "heap"})

    @classmethod
    def heap_summary(cls) -> tuple[int, dict[str, Any]]:
        """(status, JSON body): Pympler's muppy summary of the whole heap (0.3-4 s), lazy-safe."""
        if not PYMPLER.installed():
            return 501, {"error": "Pympler is not installed.", "fix": PYMPLER_FIX}
        from .heap import heap_summary as summarize

        return 200, summarize(limit=30)
