"""ModelInstancesPanel under ASGI, through Django's AsyncClient (a real ASGIRequest).

Under ASGI the panel's start hook runs in the event-loop thread; a sync view then runs in
asgiref's executor thread and an async view in the event-loop thread, interleaved with other
requests' coroutines. Counting is gated by a ContextVar, which asgiref carries into the
executor and which every request's task has its own copy of: each panel must count exactly
the instances its own request built.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from debug_toolbar_perf.instances import hook as engine_hook
from shop.models import Category, Product, Review
from tests.conftest import ToolbarRun, arun_with_toolbar
from tests.instances import instances_urls as instances_urls

TESTS_DIR = str(Path(__file__).resolve().parent.parent)
PANEL = "ModelInstancesPanel"
PANELS = ["debug_toolbar.panels.sql.SQLPanel", "debug_toolbar_perf.panels.ModelInstancesPanel"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def asgi_shop(transactional_db: Any) -> Any:
    cat = Category.objects.create(name="c")
    product = Product.objects.create(name="p", category=cat, price=1)
    Review.objects.bulk_create(Review(product=product, rating=3, text="t") for _ in range(200))
    instances_urls.reset_meetings()
    with override_settings(
        ROOT_URLCONF="tests.instances.instances_urls",
        DEBUG_TOOLBAR_PANELS=PANELS,
        DEBUG_TOOLBAR_PERF={"PROJECT_PATHS": [TESTS_DIR]},
    ):
        yield
    instances_urls.reset_meetings()


async def reviews(run: ToolbarRun) -> int:
    record = await sync_to_async(run.record)(PANEL)
    counts = {m["label"]: m["count"] for m in record["models"]}
    assert set(counts) <= {"shop.Review"}, counts
    return counts.get("shop.Review", 0)


async def test_sync_view_in_the_executor_thread(async_client: Any, asgi_shop: None) -> None:
    run = await arun_with_toolbar(async_client, "/sync/?n=40")
    assert run.response.status_code == 200
    assert run.live_panel(PANEL).asgi is True
    assert await reviews(run) == 40
    record = await sync_to_async(run.record)(PANEL)
    site = record["models"][0]["sites"][0]
    assert site["where"]["function"] == "sync_view" and site["count"] == 40
    assert engine_hook.COLLECTOR.get() is None  # unbound again in the caller's context


async def test_async_view_with_the_async_orm(async_client: Any, asgi_shop: None) -> None:
    run = await arun_with_toolbar(async_client, "/async/?n=40")
    assert run.response.status_code == 200
    # 40 rows in two async iterations, afirst(), aget(), one unsaved Review()
    assert b"<body>43\n" in run.response.content
    assert await reviews(run) == 43
    record = await sync_to_async(run.record)(PANEL)
    functions = {s["where"]["function"] for s in record["models"][0]["sites"]}
    assert "async_view" in functions
    assert sum(s["count"] for s in record["models"][0]["sites"]) == 43
    assert engine_hook.COLLECTOR.get() is None


async def test_two_concurrent_async_requests_count_only_their_own(
    async_client: Any, asgi_shop: None
) -> None:
    """Both requests reach a rendezvous half-way: their collectors are bound at the same
    time, in one event-loop thread and one executor thread, and neither sees the other's."""
    a, b = await asyncio.wait_for(
        asyncio.gather(
            arun_with_toolbar(async_client, "/async/?n=30&meet=ab"),
            arun_with_toolbar(async_client, "/async/?n=140&meet=ab"),
        ),
        60,
    )
    assert a.toolbar is not b.toolbar
    assert a.response.status_code == b.response.status_code == 200
    assert b"<body>33\n" in a.response.content
    assert b"<body>143\n" in b.response.content
    assert (await reviews(a), await reviews(b)) == (33, 143)


async def test_sync_and_async_requests_at_once(async_client: Any, asgi_shop: None) -> None:
    s, a = await asyncio.wait_for(
        asyncio.gather(
            arun_with_toolbar(async_client, "/sync/?n=25"),
            arun_with_toolbar(async_client, "/async/?n=90"),
        ),
        60,
    )
    assert (await reviews(s), await reviews(a)) == (25, 93)


async def test_many_concurrent_requests(async_client: Any, asgi_shop: None) -> None:
    sizes = [5, 17, 40, 61, 88, 120]
    runs = await asyncio.wait_for(
        asyncio.gather(
            *(
                arun_with_toolbar(async_client, f"/{kind}/?n={n}")
                for n in sizes
                for kind in ("sync", "async")
            )
        ),
        120,
    )
    got = [await reviews(r) for r in runs]
    assert got == [n + extra for n in sizes for extra in (0, 3)]


async def test_asyncio_tasks_counted_executor_threads_not(
    async_client: Any, asgi_shop: None
) -> None:
    """A task copies the request's context (counted); ``loop.run_in_executor`` runs in a
    plain thread pool without it (not counted, like a thread the view starts)."""
    run = await arun_with_toolbar(async_client, "/tasks/?n=12")
    assert b"<body>19\n" in run.response.content  # 12 loaded + 7 built in the executor
    assert await reviews(run) == 12
