"""ModelInstancesPanel: every model instance the request built, where, and how big.

Thin: the engine (``engines/instances.py``) counts through one process-wide hook
gated per request; the analysis (``analysis/instances.py``) turns the stored
record into findings. Pympler is needed only for sizes and the heap summary, so
its absence is a note in the panel, not a block.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from debug_toolbar.decorators import require_show_toolbar
from debug_toolbar.forms import SignedDataForm
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.urls import path, reverse
from django.views.decorators.http import require_GET

from ..availability import EngineProblem, module_installed
from ..base import PerfPanel
from ..conf import get_config
from ..endpoints import login_not_required, signed_payload
from ..scope import ViewTarget
from . import analysis
from .collector import Collector
from .hook import Session
from .record import build_record


class ModelInstancesPanel(PerfPanel):
    """Counts per model, creation call sites, sizes and survivors of one request."""

    title = "Model instances"
    template = "debug_toolbar_perf/panels/instances.html"
    extra_scripts = ("debug_toolbar_perf/js/instances.js",)

    def engine_problem(self) -> EngineProblem | None:
        return None  # counting needs only Django; missing Pympler is shown as a note

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
        pympler = module_installed("pympler")
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
    ) -> dict[str, Any]:
        cfg = get_config()["INSTANCES"]
        return build_record(
            session.collector,
            queries=session.collector.queries,
            threshold=int(cfg["THRESHOLD"]),
            n_plus_one=int(cfg["N_PLUS_ONE"]),
            pympler=session.collector.size_sample > 0 or module_installed("pympler"),
            full_gc=bool(cfg["FULL_GC"]),
        )

    def get_context(self, stats: dict[str, Any]) -> dict[str, Any]:
        ctx = analysis.context(stats["record"])
        ctx["heap_url"] = self.heap_summary_url()
        ctx["pympler_fix"] = 'pip install "django-debug-toolbar-perf[pympler]"'
        return ctx

    def subtitle(self, stats: dict[str, Any]) -> str:
        return analysis.subtitle(stats["record"])

    def heap_summary_url(self) -> str | None:
        request_id = getattr(self.toolbar, "request_id", None)
        if not request_id:
            return None
        signed = SignedDataForm.sign({"request_id": request_id, "action": "heap"})
        return f"{reverse('djdt:perf_instances_heap')}?{urlencode({'signed': signed})}"

    @classmethod
    def get_urls(cls) -> list[Any]:
        return [
            *super().get_urls(),
            path("perf/instances/heap/", heap_summary, name="perf_instances_heap"),
        ]


@login_not_required
@require_show_toolbar
@require_GET
def heap_summary(request: HttpRequest) -> HttpResponse:
    """Pympler muppy summary of the whole heap, on demand only (0.3-4 s), lazy-safe."""
    data = signed_payload(request, "action")
    if isinstance(data, HttpResponse):
        return data
    if data["action"] != "heap":
        return HttpResponseBadRequest("Invalid signature")
    if not module_installed("pympler"):
        return JsonResponse(
            {
                "error": "Pympler is not installed.",
                "fix": 'pip install "django-debug-toolbar-perf[pympler]"',
            },
            status=501,
        )
    from .heap import heap_summary as summarize

    return JsonResponse(summarize(limit=30))
