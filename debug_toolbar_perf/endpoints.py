"""Endpoints the panels add under the toolbar's URL namespace.

Each obeys the toolbar's show-toolbar check and accepts only data signed by the
toolbar (``SignedDataForm``), so the browser can name a stored request and a
format, never a file path or SQL text.
"""

from __future__ import annotations

import re
from typing import Any

from debug_toolbar.decorators import require_show_toolbar
from debug_toolbar.forms import SignedDataForm
from debug_toolbar.toolbar import DebugToolbar
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotFound
from django.views.decorators.http import require_GET

try:  # Django 5.1+
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # pragma: no cover

    def login_not_required(view):  # type: ignore[no-redef]
        view.login_required = False
        return view


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_SIGNED_LENGTH = 4096


def safe_filename(name: str) -> str:
    """A file name that cannot leave its directory or break a header."""
    cleaned = _SAFE_NAME.sub("_", name).strip("._") or "export"
    return cleaned[:150]


def signed_payload(request: HttpRequest, *keys: str) -> dict[str, Any] | HttpResponse:
    """The toolbar-signed payload of ``request`` with ``keys`` as strings, else a 400.

    Every endpoint of the panels reads its input only through this, so a forged, tampered,
    oversized or malformed payload never reaches a view's logic.
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


@login_not_required
@require_show_toolbar
@require_GET
def export(request: HttpRequest) -> HttpResponse:
    data = signed_payload(request, "request_id", "panel_id", "format")
    if isinstance(data, HttpResponse):
        return data
    request_id, panel_id, fmt = (data[k] for k in ("request_id", "panel_id", "format"))
    toolbar = DebugToolbar.fetch(request_id, panel_id)
    if toolbar is None:
        return HttpResponseNotFound("This request is no longer stored; reload the page.")
    try:
        panel = toolbar.get_panel_by_id(panel_id)
    except KeyError:
        return HttpResponseNotFound("Unknown panel")
    exporter = getattr(panel, "export", None)
    if exporter is None:
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
