"""A view that writes, for the ExplainPanel tests (the demo has none)."""

from debug_toolbar.toolbar import debug_toolbar_urls
from django.http import HttpRequest, HttpResponse
from django.urls import path

from shop.models import Category


def write(request: HttpRequest) -> HttpResponse:
    Category.objects.filter(name="nobody").update(name="still nobody")
    return HttpResponse("<html><body>written</body></html>")


urlpatterns = [path("write/", write), *debug_toolbar_urls()]
