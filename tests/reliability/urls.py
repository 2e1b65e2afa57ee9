"""URLs of the reliability tests (rebuilt by tests/reliability/conftest.py when panels change)."""

from debug_toolbar.toolbar import DebugToolbar
from django.urls import include, path

from demo_site.urls import urlpatterns as demo_urlpatterns
from tests.reliability import views

urlpatterns = [
    path("r/page/", views.page),
    path("r/raises/", views.raises),
    path("r/streaming/", views.streaming),
    path("r/json/", views.json_view),
    path("r/explain-fails/", views.explain_fails),
    path("r/aborted/", views.aborted),
    path("r/aborted-atomic/", views.aborted_atomic),
    path("r/probe/", views.probe),
    path("r/aprobe/", views.aprobe),
    path("r/memstats/", views.memstats),
    path("r/any/<path:rest>", views.any_path),
    *[p for p in demo_urlpatterns if getattr(p, "app_name", None) != "djdt"],
    # Built from the current panel list (debug_toolbar.urls is frozen at its first import).
    path("__debug__/", include((DebugToolbar.get_urls(), "djdt"))),
]
