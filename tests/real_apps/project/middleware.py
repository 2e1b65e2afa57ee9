"""The project's own middleware, as most sites have one: it only wraps the view, so it is
never where a query or an instance is blamed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse


class TimingHeaderMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["X-Wrapped"] = "1"
        return response


class TemplateResponseHookMiddleware:
    """A ``process_template_response`` hook: Django runs it after the view, before rendering."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_template_response(self, request: HttpRequest, response: Any) -> Any:
        response.context_data = {**(response.context_data or {}), "hooked": True}
        return response


class CountingMiddleware:
    """Middleware that builds an instance itself, before the view: its own line is the site."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from tests.real_apps.library.models import Author

        request.first_author = Author.objects.order_by("pk").first()  # type: ignore[attr-defined]
        return self.get_response(request)
