"""Views for the ExplainPanel tests: a write (the demo has none), and sync and async views
for the ASGI tests, on any database alias (``?db=``)."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from debug_toolbar.toolbar import debug_toolbar_urls
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.urls import path

from shop.models import Category, Product

#: Columns a request of the concurrency test reads: one shape per column, per request.
COLUMNS = ("name", "price", "popularity", "published", "category_id")
REPEATS = 6  # over REPEATED_QUERY_THRESHOLD (5): an N+1 finding


def write(request: HttpRequest) -> HttpResponse:
    Category.objects.filter(name="nobody").update(name="still nobody")
    return HttpResponse("<html><body>written</body></html>")


#: alias -> statements that call code that writes (set by tests/explain/test_read_only.py).
ATTACKS: dict[str, list[str]] = {}


def attack(request: HttpRequest, alias: str, n: int) -> HttpResponse:
    """A view running one of those statements, as a user's raw SQL would."""
    with connections[alias].cursor() as cur:
        cur.execute(ATTACKS[alias][n])
        rows = cur.fetchall()
    return _page(f"{len(rows)} rows")


def _page(text: str) -> HttpResponse:
    return HttpResponse(f"<html><body><p>{text}</p></body></html>")


def sync_view(request: HttpRequest) -> HttpResponse:
    """Under ASGI: runs in asgiref's executor thread."""
    db = request.GET.get("db", "default")
    first = Category.objects.using(db).order_by("pk").first()
    names = []
    for _ in range(REPEATS):
        names.append(Product.objects.using(db).filter(category=first).count())  # sync N+1
    return _page(f"{len(names)} counts")


def _count_published(db: str) -> int:
    return Product.objects.using(db).filter(published=True).count()  # via sync_to_async


async def async_view(request: HttpRequest) -> HttpResponse:
    """The async ORM (aget, async for, acount) and sync_to_async, awaiting in between."""
    db = request.GET.get("db", "default")
    first = await Category.objects.using(db).order_by("pk").afirst()
    pk = first.pk if first else 0
    for _ in range(REPEATS):
        await Category.objects.using(db).aget(pk=pk)  # async N+1
        await asyncio.sleep(0)
    names = [c.name async for c in Category.objects.using(db).filter(pk__gte=pk)]
    published = await sync_to_async(_count_published)(db)
    total = await Product.objects.using(db).acount()
    return _page(f"{len(names)} {published} {total}")


async def async_column(request: HttpRequest) -> HttpResponse:
    """One column per request (``?col=``): the concurrency test's own shapes."""
    db = request.GET.get("db", "default")
    col = request.GET["col"]
    assert col in COLUMNS
    seen = 0
    for _ in range(REPEATS):
        values = Product.objects.using(db).values_list(col, flat=True).filter(pk__gt=0)
        seen += len([v async for v in values[:2]])
        await asyncio.sleep(0)  # the other requests run here
    return _page(f"{col}: {seen}")


def sync_column(request: HttpRequest) -> HttpResponse:
    db = request.GET.get("db", "default")
    col = request.GET["col"]
    assert col in COLUMNS
    seen = 0
    for _ in range(REPEATS):
        seen += len(Product.objects.using(db).values_list(col, flat=True).filter(pk__gt=0)[:2])
    return _page(f"{col}: {seen}")


def _in_another_thread(db: str) -> int:
    try:
        return Category.objects.using(db).filter(name__startswith="C").count()  # in a pool thread
    finally:
        connections.close_all()  # the executor's threads live on; the test database must go


async def async_unsafe_thread(request: HttpRequest) -> HttpResponse:
    """sync_to_async(thread_sensitive=False): a pool thread with its own connection."""
    db = request.GET.get("db", "default")
    count = await sync_to_async(_in_another_thread, thread_sensitive=False)(db)
    total = await Category.objects.using(db).acount()  # in the view
    return _page(f"{count} {total}")


async def raises(request: HttpRequest) -> HttpResponse:
    await Category.objects.acount()
    raise ValueError("the async view failed on purpose")


urlpatterns = [
    path("write/", write),
    path("explain/attack/<str:alias>/<int:n>/", attack),
    path("explain/sync/", sync_view),
    path("explain/async/", async_view),
    path("explain/async-column/", async_column),
    path("explain/sync-column/", sync_column),
    path("explain/unsafe-thread/", async_unsafe_thread),
    path("explain/raises/", raises),
    *debug_toolbar_urls(),
]
