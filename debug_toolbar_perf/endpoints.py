"""Every HTTP endpoint of the panels, mounted under the toolbar's URL namespace.

Each obeys the toolbar's show-toolbar check and accepts only data signed by the
toolbar (``SignedDataForm``, through :func:`sign` and :func:`signed_payload`), so the
browser can name a stored request, a panel and a format or shape, never a file path
or SQL text. The work itself is the panel's: an endpoint finds the stored panel
(:mod:`.store`) and calls its method, so this module imports no feature.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from debug_toolbar.decorators import require_show_toolbar
from debug_toolbar.forms import SignedDataForm
from django.core.cache import cache
from django.db import transaction
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotFound,
    JsonResponse,
)
from django.middleware.csrf import get_token
from django.urls import URLPattern, path, reverse
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from .store import stored_panel, stored_toolbar

try:  # Django 5.1+
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # pragma: no cover

    def login_not_required(view_func: Any) -> Any:  # type: ignore[misc]
        view_func.login_required = False
        return view_func


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_SIGNED_LENGTH = 4096


def safe_filename(name: str) -> str:
    """A file name that cannot leave its directory or break a header."""
    cleaned = _SAFE_NAME.sub("_", name).strip("._") or "export"
    return cleaned[:150]


def sign(payload: dict[str, str]) -> str:
    """The toolbar's signature of ``payload`` (what :func:`signed_payload` accepts)."""
    return SignedDataForm.sign(payload)


#: How long a single-use signed payload (:func:`sign_once`) is accepted.
ONCE_MAX_AGE_S = 600


def sign_once(payload: dict[str, str]) -> str:
    """:func:`sign` with a random nonce and the time of issue: :func:`claim_once` accepts the
    result once, within :data:`ONCE_MAX_AGE_S`."""
    return sign({**payload, "nonce": secrets.token_urlsafe(12), "issued": str(int(time.time()))})


def claim_once(data: dict[str, Any]) -> HttpResponse | None:
    """None the first time a fresh :func:`sign_once` payload is claimed; else a 410.

    The used nonces live in Django's default cache: shared by every process when the cache
    is (Redis, Memcached, database), per process with the default local-memory cache.
    """
    nonce, issued = data.get("nonce"), data.get("issued")
    if not isinstance(nonce, str) or not isinstance(issued, str) or not issued.isdigit():
        return HttpResponseBadRequest("Invalid data")
    if time.time() - int(issued) > ONCE_MAX_AGE_S:
        return HttpResponse(
            f"This button expired after {ONCE_MAX_AGE_S // 60} minutes; reload the panel.",
            status=410,
        )
    if not cache.add(f"debug_toolbar_perf:used:{nonce}", 1, timeout=ONCE_MAX_AGE_S + 60):
        return HttpResponse("This button was used already; reload the panel.", status=410)
    return None


def signed_url(name: str, payload: dict[str, str]) -> str:
    """The URL of endpoint ``djdt:<name>`` with ``payload`` signed in its query string."""
    return f"{reverse(f'djdt:{name}')}?{urlencode({'signed': sign(payload)})}"


def signed_payload(request: HttpRequest, *keys: str) -> dict[str, Any] | HttpResponse:
    """The toolbar-signed payload of ``request`` with ``keys`` as strings, else a 400.

    Every endpoint reads its input only through this, so a forged, tampered, oversized
    or malformed payload never reaches a view's logic.
    """
    source = request.POST if request.method == "POST" else request.GET
    signed = source.get("signed", "")
    if not signed or len(signed) > MAX_SIGNED_LENGTH:
        return HttpResponseBadRequest("Invalid signature")
    data = SignedDataForm({"signed": signed}).verified_data()
    if not isinstance(data, dict):
        return HttpResponseBadRequest("Invalid signature")
    if not all(isinstance(data.get(key), str) for key in keys):
        return HttpResponseBadRequest("Invalid data")
    return data


# -- the endpoints ----------------------------------------------------------------------


@login_not_required
@require_show_toolbar
@require_GET
def export(request: HttpRequest, panel_class: Any = None) -> HttpResponse:
    """A panel's export (speedscope, collapsed stacks, text...) of a stored request."""
    data = signed_payload(request, "request_id", "panel_id", "format")
    if isinstance(data, HttpResponse):
        return data
    request_id, panel_id, fmt = (data[k] for k in ("request_id", "panel_id", "format"))
    if stored_toolbar(request_id, panel_id) is None:
        return HttpResponseNotFound("This request is no longer stored; reload the page.")
    panel = stored_panel(request_id, panel_id)
    exporter = getattr(panel, "export", None)
    if panel is None or exporter is None:
        return HttpResponseNotFound("Unknown panel")
    stats = panel.get_stats()
    if not stats or not stats.get("record"):
        return HttpResponseNotFound("No data recorded for this panel")
    result = exporter(fmt, stats)
    if result is None:
        return HttpResponseBadRequest("Unknown format")
    response = HttpResponse(result.content, content_type=result.content_type)
    response["Content-Disposition"] = f'attachment; filename="{safe_filename(result.filename)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@transaction.non_atomic_requests  # never inside ATOMIC_REQUESTS: the panel's own transaction
@csrf_protect  # a POST from the toolbar's page only, with or without CsrfViewMiddleware
@login_not_required
@require_show_toolbar
@require_POST
def explain_analyze(request: HttpRequest, panel_class: Any = None) -> HttpResponse:
    """EXPLAIN ANALYZE of one stored query shape (the ExplainPanel's ``analyze_shape``).

    The signed payload is single-use and expires (:func:`claim_once`): a replayed POST
    never runs the statement again.
    """
    data = signed_payload(request, "request_id", "panel_id", "shape")
    if isinstance(data, HttpResponse):
        return data
    refused = claim_once(data)
    if refused is not None:
        return refused
    request_id, panel_id, shape_id = (data[k] for k in ("request_id", "panel_id", "shape"))
    if stored_toolbar(request_id, panel_id) is None:
        status, body = 404, {"error": "This request is no longer stored; reload the page."}
    else:
        panel = stored_panel(request_id, panel_id)
        analyze = getattr(panel, "analyze_shape", None)
        if panel is None or analyze is None:
            status, body = 404, {"error": "Unknown panel."}
        else:
            status, body = analyze(panel.get_stats() or {}, shape_id)
    if "error" in body:
        from django.template.loader import render_to_string

        body = {"content": render_to_string(ANALYZE_TEMPLATE, body)}
    return JsonResponse(body, status=status)


ANALYZE_TEMPLATE = "debug_toolbar_perf/panels/explain_analyze.html"


@login_not_required
@require_show_toolbar
@require_GET
def heap_summary(request: HttpRequest, panel_class: Any = None) -> HttpResponse:
    """Pympler's summary of the whole heap (``panel_class.heap_summary``), on demand only."""
    data = signed_payload(request, "action")
    if isinstance(data, HttpResponse):
        return data
    if data["action"] != "heap":
        return HttpResponseBadRequest("Invalid signature")
    summarize = getattr(panel_class, "heap_summary", None)
    if summarize is None:
        return HttpResponseNotFound("Unknown panel")
    status, body = summarize()
    return JsonResponse(body, status=status)


_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@login_not_required
@require_show_toolbar
@require_GET
def compare(request: HttpRequest, panel_class: Any = None) -> HttpResponse:
    """A panel's Δ block against another stored request (``PerfPanel.compare_html``).

    The compared request is signed; the baseline is any request id the store holds (the
    panel offers them), checked for shape and looked up, never used as anything else."""
    data = signed_payload(request, "request_id", "panel_id")
    if isinstance(data, HttpResponse):
        return data
    baseline_id = request.GET.get("baseline", "")
    if not _REQUEST_ID.fullmatch(baseline_id):
        return HttpResponseBadRequest("Invalid baseline")
    request_id, panel_id = data["request_id"], data["panel_id"]
    panel = stored_panel(request_id, panel_id)
    render = getattr(panel, "compare_html", None)
    if panel is None or render is None:
        return JsonResponse(
            {"error": "This request is no longer stored; reload the page."}, status=404
        )
    return JsonResponse({"content": render(panel.get_stats() or {}, baseline_id)})


@login_not_required
@require_show_toolbar
@require_GET
@ensure_csrf_cookie  # sets the cookie even where CsrfViewMiddleware is not installed
def csrf_token(request: HttpRequest, panel_class: Any = None) -> HttpResponse:
    """The CSRF token for the ANALYZE POST, asked for when the button is clicked.

    Taking it while the user's page ran would add ``Vary: Cookie`` (and a cookie) to that
    page's response: the panels must leave the page's response as it would be without them.
    """
    return JsonResponse({"token": get_token(request)})


#: name -> (route, view). Each panel mounts the ones it serves (``PerfPanel.endpoints``), and
#: each view gets the class of the panel that mounted it.
ENDPOINTS = {
    "perf_export": ("perf/export/", export),
    "perf_explain_analyze": ("perf/explain/analyze/", explain_analyze),
    "perf_instances_heap": ("perf/instances/heap/", heap_summary),
    "perf_compare": ("perf/compare/", compare),
    "perf_csrf": ("perf/csrf/", csrf_token),
}


def urls(panel_class: type, names: tuple[str, ...]) -> list[URLPattern]:
    return [
        path(ENDPOINTS[n][0], ENDPOINTS[n][1], {"panel_class": panel_class}, name=n) for n in names
    ]
