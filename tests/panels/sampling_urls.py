"""Views with a known CPU split, an object/template-heavy view and a raising view, for the
sampling profiler's tests (used via ROOT_URLCONF override)."""

from __future__ import annotations

import time

from debug_toolbar.toolbar import debug_toolbar_urls
from django.http import HttpRequest, HttpResponse
from django.template import Context, Engine
from django.urls import path


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


urlpatterns = [
    path("split/", split_view),
    path("a/", only_a),
    path("b/", only_b),
    path("objects/", objects_view),
    path("instant/", instant),
    path("raises/", raises),
    *debug_toolbar_urls(),
]
