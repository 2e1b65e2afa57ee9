"""Sync and async views building known numbers of Review instances, for the ASGI tests of
ModelInstancesPanel (used via ROOT_URLCONF override).

``?n=`` rows are built; ``?meet=<name>`` makes two requests wait for each other at a
rendezvous in the middle of their work, so both are measured at the same moment.
"""

from __future__ import annotations

import asyncio
import threading

from debug_toolbar.toolbar import debug_toolbar_urls
from django.http import HttpRequest, HttpResponse
from django.urls import path

from shop.models import Review

PAGE = "<html><body>{}</body></html>"

#: name -> (loop-side event set by the first arrival, arrivals)
_meetings: dict[str, list[object]] = {}
_meet_lock = threading.Lock()


async def _meet(name: str) -> None:
    """Wait (at most 10 s) until two requests have reached the rendezvous ``name``."""
    with _meet_lock:
        entry = _meetings.setdefault(name, [asyncio.Event(), 0])
        entry[1] = int(entry[1]) + 1  # type: ignore[call-overload]
        event = entry[0]
        assert isinstance(event, asyncio.Event)
        if entry[1] >= 2:
            event.set()
    await asyncio.wait_for(event.wait(), 10)


def reset_meetings() -> None:
    with _meet_lock:
        _meetings.clear()


def sync_view(request: HttpRequest) -> HttpResponse:
    """Runs in asgiref's executor thread under ASGI (sync_to_async, thread_sensitive)."""
    n = int(request.GET.get("n", "10"))
    rows = list(Review.objects.order_by("pk")[:n])
    return HttpResponse(PAGE.format(len(rows)))


async def async_view(request: HttpRequest) -> HttpResponse:
    """Runs in the event-loop thread; the ORM work goes through the async API."""
    n = int(request.GET.get("n", "10"))
    half = n // 2
    rows = [r async for r in Review.objects.order_by("pk")[:half]]
    meet = request.GET.get("meet")
    if meet:
        await _meet(meet)  # the other request is half-way too: both collectors are bound
    else:
        await asyncio.sleep(0)
    rows += [r async for r in Review.objects.order_by("pk")[half:n]]
    first = await Review.objects.order_by("pk").afirst()  # one more instance
    one = await Review.objects.aget(pk=rows[0].pk)  # and one more
    Review(rating=1, text="unsaved")  # built in the event-loop thread itself
    return HttpResponse(PAGE.format(len(rows) + (first is not None) + (one is not None) + 1))


async def tasks_view(request: HttpRequest) -> HttpResponse:
    """Work in an asyncio task (copies the context: counted) and in the loop's default
    executor (``run_in_executor`` does not copy it: not counted)."""
    n = int(request.GET.get("n", "10"))

    async def load() -> list[Review]:
        return [r async for r in Review.objects.order_by("pk")[:n]]

    rows = await asyncio.create_task(load())
    loop = asyncio.get_running_loop()
    elsewhere = await loop.run_in_executor(None, _unsaved_reviews, 7)
    return HttpResponse(PAGE.format(len(rows) + len(elsewhere)))


def _unsaved_reviews(k: int) -> list[Review]:
    return [Review(rating=1, text="x") for _ in range(k)]


urlpatterns = [
    path("sync/", sync_view),
    path("async/", async_view),
    path("tasks/", tasks_view),
    *debug_toolbar_urls(),
]
