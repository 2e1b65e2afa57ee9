"""Views used only by the tests: every kind of view the scoping must handle."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views import View
from rest_framework import viewsets
from rest_framework.response import Response


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<html><body><p>plain</p></body></html>")


async def async_plain(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(0)
    return HttpResponse("<html><body><p>async plain</p></body></html>")


def _decorated(view: Any) -> Any:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return view(request, *args, **kwargs)

    return wrapper


@_decorated
def decorated(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<html><body><p>decorated</p></body></html>")


class ClassBased(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("<html><body><p>get</p></body></html>")

    def post(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("<html><body><p>post</p></body></html>")


class ThingViewSet(viewsets.ViewSet):
    def list(self, request: Any) -> Response:
        return Response({"things": [1, 2, 3]})

    def retrieve(self, request: Any, pk: str | None = None) -> Response:
        return Response({"thing": pk})


def raises(request: HttpRequest) -> HttpResponse:
    raise ValueError("the view failed on purpose")


def streaming(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([b"<html><body>", b"streamed", b"</body></html>"]))


def json_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse('{"ok": true}', content_type="application/json")
