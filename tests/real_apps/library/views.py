"""Generic views of the library: each returns a TemplateResponse that Django renders after
the view returns, the template calling a slow model method and following a foreign key."""

from __future__ import annotations

from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.views.generic import ListView

from .models import Book


class BookList(ListView):
    model = Book
    template_name = "library/book_list.html"
    ordering = ("pk",)


def book_list(request: HttpRequest) -> TemplateResponse:
    """The function-view twin of :class:`BookList`."""
    return TemplateResponse(
        request, "library/book_list.html", {"object_list": Book.objects.order_by("pk")}
    )


def router(request: HttpRequest, kind: str) -> TemplateResponse:
    """A dispatcher like Wagtail's view_router: looks up a view, hands the request on."""
    views = {"list": BookList.as_view(), "fn": book_list}
    view = views[kind]
    return view(request)
