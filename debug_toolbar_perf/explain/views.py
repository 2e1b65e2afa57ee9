"""The EXPLAIN ANALYZE endpoint, mounted under the toolbar's URL namespace.

It accepts only data signed by the toolbar for a stored request (request id,
panel id, shape id) and obeys the toolbar's show-toolbar check. The SQL and its
typed parameters are read from that request's stored stats: the browser can
name a shape, never send SQL.
"""

from __future__ import annotations

from debug_toolbar.decorators import require_show_toolbar
from debug_toolbar.toolbar import DebugToolbar
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..conf import get_config
from ..endpoints import login_not_required, signed_payload
from .analyze import AnalyzeRefused, run_analyze
from .findings import plan_findings

TEMPLATE = "debug_toolbar_perf/panels/explain_analyze.html"


@csrf_exempt  # the payload is signed by the toolbar; nothing else is read from the request
@login_not_required
@require_show_toolbar
@require_POST
def explain_analyze(request: HttpRequest) -> HttpResponse:
    data = signed_payload(request, "request_id", "panel_id", "shape")
    if isinstance(data, HttpResponse):
        return data
    request_id, panel_id, shape_id = (data[k] for k in ("request_id", "panel_id", "shape"))
    toolbar = DebugToolbar.fetch(request_id, panel_id)
    if toolbar is None:
        return JsonResponse(
            {"content": _render(error="This request is no longer stored; reload the page.")},
            status=404,
        )
    try:
        stats = toolbar.get_panel_by_id(panel_id).get_stats()
    except KeyError:
        return JsonResponse({"content": _render(error="Unknown panel.")}, status=404)
    shapes = (stats.get("record") or {}).get("shapes") or []
    shape = next((s for s in shapes if s.get("id") == shape_id), None)
    if shape is None:
        return JsonResponse({"content": _render(error="Unknown query shape.")}, status=404)
    cfg = get_config()["EXPLAIN"]
    try:
        result = run_analyze(
            shape,
            allow_writes=bool(cfg["ALLOW_ANALYZE_WRITES"]),
            timeout_ms=int(cfg["STATEMENT_TIMEOUT_MS"]),
        )
    except AnalyzeRefused as exc:
        return JsonResponse({"content": _render(error=str(exc), refused=True)}, status=403)
    except (DatabaseError, NotImplementedError) as exc:
        msg = f"{type(exc).__name__}: {exc}".strip()
        return JsonResponse({"content": _render(error=msg)}, status=200)
    findings = plan_findings(shape, cfg, plan=result["plan"])
    nodes = sorted({f["node"] for f in findings if f.get("node")})
    html = _render(result=result, findings=findings, finding_nodes=nodes, shape=shape)
    return JsonResponse({"content": html, "findings": [f["code"] for f in findings]})


def _render(**context: object) -> str:
    return render_to_string(TEMPLATE, context)
