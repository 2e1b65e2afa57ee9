"""Views for the reliability tests: faults a real project meets, and probes of our hooks."""

from __future__ import annotations

import sys
import threading
from typing import Any

from django.db import DatabaseError, connection, connections, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from shop.models import Category, Product


def page(request: HttpRequest) -> HttpResponse:
    """Builds a few model instances and runs two query shapes: every panel has work."""
    if request.headers.get("X-Wrap"):  # a project's own execute_wrapper around the work
        seen: list[str] = []

        def project_wrapper(execute: Any, sql: str, *args: Any) -> Any:
            seen.append(sql)
            return execute(sql, *args)

        with connection.execute_wrapper(project_wrapper):
            response = _page()
        assert len(seen) == 2, seen
        return response
    return _page()


def _page() -> HttpResponse:
    names = [c.name for c in Category.objects.order_by("pk")]
    count = Product.objects.filter(published=True).count()
    data = [str(i) for i in range(2000)]
    return HttpResponse(
        f"<html><body><p>{', '.join(names)}</p><p>{count} {len(data)}</p></body></html>"
    )


def raises(request: HttpRequest) -> HttpResponse:
    list(Category.objects.all())
    raise ValueError("the view failed on purpose")


def streaming(request: HttpRequest) -> StreamingHttpResponse:
    names = [c.name for c in Category.objects.order_by("pk")]
    return StreamingHttpResponse(
        iter([b"<html><body>", ", ".join(names).encode(), b"</body></html>"])
    )


def json_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"categories": [c.name for c in Category.objects.order_by("pk")]})


def explain_fails(request: HttpRequest) -> HttpResponse:
    """A statement that runs, on a table gone before the end of the request: EXPLAIN fails."""
    alias = request.GET.get("db", "default")
    with connections[alias].cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE djdt_perf_gone (n integer)")
        cursor.execute("INSERT INTO djdt_perf_gone (n) VALUES (1), (2)")
        cursor.execute("SELECT n FROM djdt_perf_gone WHERE n > 0")
        rows = cursor.fetchall()
        cursor.execute("DROP TABLE djdt_perf_gone")
    return HttpResponse(f"<html><body>{len(rows)} rows</body></html>")


def aborted(request: HttpRequest) -> HttpResponse:
    """Leaves the PostgreSQL transaction aborted (an error caught without a savepoint)."""
    conn = connections["postgres"]
    transaction.set_autocommit(False, using="postgres")
    names = [c.name for c in Category.objects.using("postgres").order_by("pk")]
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT * FROM djdt_perf_no_such_table")
    except DatabaseError as exc:
        error = type(exc).__name__
    return HttpResponse(f"<html><body>{len(names)} {error}</body></html>")


def aborted_atomic(request: HttpRequest) -> HttpResponse:
    """An error inside atomic() caught by the view: Django rolls the block back."""
    try:
        with transaction.atomic(using="postgres"):
            list(Category.objects.using("postgres").all())
            with connections["postgres"].cursor() as cursor:
                cursor.execute("SELECT * FROM djdt_perf_no_such_table")
    except DatabaseError as exc:
        error = type(exc).__name__
    return HttpResponse(f"<html><body>{error}</body></html>")


# -- probes: what of ours is active while the view runs ----------------------------------


def hooks_active() -> dict[str, Any]:
    """Every hook this package can install, as seen from inside a view."""
    from debug_toolbar_perf.engines import instances, line_memory

    found: dict[str, Any] = {
        "gettrace": repr(sys.gettrace()) if sys.gettrace() is not None else None,
        "switchinterval": sys.getswitchinterval(),
        "sampler_threads": [
            t.name for t in threading.enumerate() if t.name.startswith("debug-toolbar-perf")
        ],
        "collector_bound": instances.COLLECTOR.get() is not None,
        "execute_wrappers": {a: len(connections[a].execute_wrappers) for a in connections},
        "monitoring": None,
        "vmprof_enabled": False,
    }
    if sys.version_info >= (3, 12):
        found["monitoring"] = {
            i: sys.monitoring.get_tool(i)
            for i in range(6)
            if sys.monitoring.get_tool(i) == line_memory.TOOL_NAME
        }
    vmprof = sys.modules.get("vmprof")
    if vmprof is not None:
        found["vmprof_enabled"] = bool(vmprof.is_enabled())
    return found


def probe(request: HttpRequest) -> HttpResponse:
    found = hooks_active()
    names = [c.name for c in Category.objects.all()]  # an instance and a query to catch
    found["categories"] = len(names)
    found["queries_wrapped"] = len(connection.execute_wrappers)
    return (
        JsonResponse(found)
        if request.GET.get("json")
        else HttpResponse(
            "<html><body><pre>" + JsonResponse(found).content.decode() + "</pre></body></html>"
        )
    )


def any_path(request: HttpRequest, rest: str) -> HttpResponse:
    """Any path at all (the sampling panel names its EXPORT_DIR file after it)."""
    return page(request)
