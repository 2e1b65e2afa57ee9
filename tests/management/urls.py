"""The demo URLs plus an echo view that records what the command sent."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from tests.urls import urlpatterns as base

SEEN: dict = {}


def echo(request: HttpRequest) -> HttpResponse:
    SEEN.update(
        method=request.method,
        user=request.user.get_username() if request.user.is_authenticated else None,
        thing=request.headers.get("X-Thing"),
        body=request.body,
        content_type=request.content_type,
        query=request.GET.get("q"),
    )
    return HttpResponse("<html><body>echo</body></html>")


urlpatterns = [path("echo/", echo), *base]
