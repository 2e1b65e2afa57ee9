"""Wagtail's admin and its pages, with the toolbar."""

from debug_toolbar.toolbar import debug_toolbar_urls
from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls

urlpatterns = [
    path("cms/", include(wagtailadmin_urls)),
    *debug_toolbar_urls(),
    path("", include(wagtail_urls)),
]
