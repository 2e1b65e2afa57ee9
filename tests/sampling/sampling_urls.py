"""Views with a known CPU split, an object/template-heavy view and a raising view, for the
sampling profiler's tests (used via ROOT_URLCONF override), plus async views for ASGI."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from debug_toolbar.toolbar import debug_toolbar_urls
from django.http import HttpRequest, HttpResponse
from django.template import Context, Engine
from django.urls import path
from django.views import View
from rest_framework import viewsets
from rest_framework.response import Response


def burn_for(seconds: float) -> int:
    """Burn CPU in this frame for ``seconds`` of thread CPU time."""
    end = time.thread_time() + seconds
    n = 0
    while time.thread_time() < end:
        for i in range(200):
            n += i % 7
    return n


def heavy_part(scale: float) -> int:
    return burn_for(0.07 * scale)


def light_part(scale: float) -> int:
    return burn_for(0.03 * scale)


def split_view(request: HttpRequest) -> HttpResponse:
    """70% of the view's time in heavy_part, 30% in light_part."""
    scale = float(request.GET.get("scale", "1"))
    return HttpResponse(f"<html><body>{heavy_part(scale) + light_part(scale)}</body></html>")


def only_a(request: HttpRequest) -> HttpResponse:
    n = 0
    end = time.perf_counter() + float(request.GET.get("s", "0.3"))
    while time.perf_counter() < end:
        n += thread_a_marker()
    return HttpResponse(f"<html><body>{n}</body></html>")


def thread_a_marker() -> int:
    return sum(range(300))


def only_b(request: HttpRequest) -> HttpResponse:
    n = 0
    end = time.perf_counter() + float(request.GET.get("s", "0.3"))
    while time.perf_counter() < end:
        n += thread_b_marker()
    return HttpResponse(f"<html><body>{n}</body></html>")


def thread_b_marker() -> int:
    return sum(range(300))


class Item:
    """Python __init__ and properties called from C: what crashed vmprof on 3.11/3.12."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.name = f"item {n}"

    @property
    def square(self) -> int:
        return self.n * self.n

    def __getattr__(self, name: str) -> str:
        if name == "label":
            return self.name.title()
        raise AttributeError(name)


TEMPLATE = Engine(debug=True).from_string(
    "<html><body><table>{% for it in items %}<tr><td>{{ it.n }}</td><td>{{ it.square }}</td>"
    "<td>{{ it.label }}</td></tr>{% endfor %}</table></body></html>"
)


def objects_view(request: HttpRequest) -> HttpResponse:
    items = [Item(i) for i in range(int(request.GET.get("n", "3000")))]
    items.sort(key=lambda it: -it.square)
    return HttpResponse(TEMPLATE.render(Context({"items": items})))


def instant(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<html><body>ok</body></html>")


class ViewFailed(RuntimeError):
    pass


def raises(request: HttpRequest) -> HttpResponse:
    burn_for(0.03)
    raise ViewFailed("the view failed on purpose")


# --- ASGI ---------------------------------------------------------------------------------


async def async_split(request: HttpRequest) -> HttpResponse:
    """The 70/30 split in an async view (runs on the event loop thread)."""
    scale = float(request.GET.get("scale", "1"))
    total = heavy_part(scale)
    await asyncio.sleep(0)
    total += light_part(scale)
    return HttpResponse(f"<html><body>{total}</body></html>")


def async_a_marker() -> int:
    return burn_for(0.002)


def async_b_marker() -> int:
    return burn_for(0.002)


async def _busy(request: HttpRequest, marker: object) -> HttpResponse:
    """Burn CPU in ``marker`` in 2 ms slices, yielding to the loop between slices, so two
    such requests run interleaved on the one event-loop thread."""
    n = 0
    end = time.perf_counter() + float(request.GET.get("s", "0.3"))
    while time.perf_counter() < end:
        n += marker()  # type: ignore[operator]
        await asyncio.sleep(0)
    return HttpResponse(f"<html><body>{n}</body></html>")


async def async_a(request: HttpRequest) -> HttpResponse:
    return await _busy(request, async_a_marker)


async def async_b(request: HttpRequest) -> HttpResponse:
    return await _busy(request, async_b_marker)


async def async_same(request: HttpRequest) -> HttpResponse:
    """One view, two requests at once: only the request argument tells them apart."""
    marker = async_a_marker if request.GET.get("which") == "a" else async_b_marker
    n = 0
    end = time.perf_counter() + float(request.GET.get("s", "0.3"))
    while time.perf_counter() < end:
        n += marker()
        await asyncio.sleep(0)
    return HttpResponse(f"<html><body>{n}</body></html>")


async def async_raises(request: HttpRequest) -> HttpResponse:
    heavy_part(2)
    raise ViewFailed("the async view failed on purpose")


class BurningView(View):
    """A sync class-based view (under ASGI: run in asgiref's executor thread)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(f"<html><body>{heavy_part(1.5) + light_part(1.5)}</body></html>")


class BurningViewSet(viewsets.ViewSet):
    """DRF: the action receives DRF's Request, which wraps the Django request."""

    def list(self, request: Any) -> Response:
        return Response({"n": heavy_part(1.5) + light_part(1.5)})


urlpatterns = [
    path("async/split/", async_split),
    path("async/a/", async_a),
    path("async/b/", async_b),
    path("async/same/", async_same),
    path("async/raises/", async_raises),
    path("cbv/", BurningView.as_view()),
    path("drf/", BurningViewSet.as_view({"get": "list"})),
    path("split/", split_view),
    path("a/", only_a),
    path("b/", only_b),
    path("objects/", objects_view),
    path("instant/", instant),
    path("raises/", raises),
    *debug_toolbar_urls(),
]
