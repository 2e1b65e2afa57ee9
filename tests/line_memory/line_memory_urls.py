"""Views for the LineMemoryPanel tests (used via ROOT_URLCONF override)."""

from __future__ import annotations

import asyncio
import threading

from debug_toolbar.toolbar import debug_toolbar_urls
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views import View
from memory_profiler import profile as mp_profile

from debug_toolbar_perf import profile_memory
from shop import views as shop_views
from shop.models import Category

MIB = 1 << 20
PAGE = "<html><body><p>{}</p></body></html>"


@profile_memory
def decorated_helper() -> bytearray:
    return bytearray(6 * MIB)  # DECORATED-LINE


def settings_helper() -> bytearray:
    return bytearray(7 * MIB)  # SETTINGS-LINE


@mp_profile(stream=open("/dev/null", "w"))  # noqa: SIM115
def mp_helper() -> int:
    data = bytearray(9 * MIB)  # MP-LINE
    return len(data)


def uses_helpers(request: HttpRequest) -> HttpResponse:
    a = decorated_helper()
    b = settings_helper()
    c = mp_helper()
    return HttpResponse(PAGE.format(len(a) + len(b) + c))


class Heavy(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        block = [0] * 7_000_000  # CBV-LINE
        return HttpResponse(PAGE.format(len(block)))


def raises(request: HttpRequest) -> HttpResponse:
    block = [0] * 6_000_000  # RAISES-LINE
    size = len(block)
    del block  # Django's debug 500 page would repr a 6M-item local (30 s)
    raise ValueError(f"failed on purpose after {size}")


# Two requests on a threaded server, interleaved on purpose: "measured" allocates 48 MB,
# then waits while "other" allocates 100 MB in another thread, then frees its 48 MB while the
# other request's toolbar is still working (so that interval may be flagged, honestly).
measured_waiting = threading.Event()
other_done = threading.Event()
other_holds: list[list[int]] = []


other_ready = threading.Event()


def measured(request: HttpRequest) -> HttpResponse:
    other_ready.wait(10)  # the other request has reached its view
    block = [0] * 6_000_000  # MEASURED-ALLOC
    measured_waiting.set()
    other_done.wait(10)  # MEASURED-WAIT
    size = len(block)
    del block  # MEASURED-FREE
    return HttpResponse(PAGE.format(size))


def other(request: HttpRequest) -> HttpResponse:
    other_ready.set()
    measured_waiting.wait(10)
    other_holds.append([0] * 13_000_000)  # ~100 MB, kept until the test clears it
    other_done.set()
    return HttpResponse(PAGE.format("other"))


# -- ASGI: a sync view (asgiref's executor thread) and async views (the event loop) --------


def sync_alloc(request: HttpRequest) -> HttpResponse:
    block = [0] * 6_000_000  # SYNC-ALLOC
    size = len(block)
    del block  # SYNC-FREE
    return HttpResponse(PAGE.format(size))


async def async_alloc(request: HttpRequest) -> HttpResponse:
    block = [0] * 6_000_000  # ASYNC-ALLOC
    await asyncio.sleep(0.01)  # ASYNC-AWAIT
    size = len(block)
    del block  # ASYNC-FREE
    return HttpResponse(PAGE.format(size))


# Two async requests in one event loop: "waiter" allocates 48 MB, then awaits while "hog"
# allocates 100 MB in the same thread; the waiter's lines must not be charged for it.
async_events: dict[str, asyncio.Event] = {}
async_holds: list[list[int]] = []


def reset_async() -> None:
    async_events.clear()
    async_events.update(waiting=asyncio.Event(), hog_done=asyncio.Event())
    async_holds.clear()


async def async_waiter(request: HttpRequest) -> HttpResponse:
    block = [0] * 6_000_000  # WAITER-ALLOC
    async_events["waiting"].set()
    await asyncio.wait_for(async_events["hog_done"].wait(), 10)  # WAITER-WAIT
    size = len(block)
    del block  # WAITER-FREE
    return HttpResponse(PAGE.format(size))


async def async_hog(request: HttpRequest) -> HttpResponse:
    await asyncio.wait_for(async_events["waiting"].wait(), 10)
    async_holds.append([0] * 13_000_000)  # HOG-ALLOC (~100 MB, kept until the test clears it)
    async_events["hog_done"].set()
    return HttpResponse(PAGE.format("hog"))


def categories(request: HttpRequest) -> HttpResponse:
    """A few thousand model instances from the database, kept to the end of the view."""
    rows = list(Category.objects.all())  # INSTANCES-LINE
    return HttpResponse(PAGE.format(len(rows)))


def reuse(request: HttpRequest) -> HttpResponse:
    """Two lines allocating the same: the second reuses the memory the first freed."""
    first = [str(i) * 3 for i in range(100_000)]  # REUSE-FIRST
    del first
    second = [str(i) * 3 for i in range(100_000)]  # REUSE-SECOND
    return HttpResponse(PAGE.format(len(second)))


urlpatterns = [
    path("categories/", categories),
    path("reuse/", reuse),
    path("sync-alloc/", sync_alloc),
    path("async-alloc/", async_alloc),
    path("async-waiter/", async_waiter),
    path("async-hog/", async_hog),
    path("measured/", measured),
    path("other/", other),
    path("memory/", shop_views.memory),
    path("hot-loop/", shop_views.hot_loop),
    path("reviews/summary/", shop_views.ReviewSummaryView.as_view()),
    path("helpers/", uses_helpers),
    path("heavy/", Heavy.as_view()),
    path("raises/", raises),
    *debug_toolbar_urls(),
]
