"""SamplingProfilerPanel under ASGI, through Django's AsyncClient (a real ASGIRequest), and
async views under WSGI.

Under ASGI the panel starts in the event-loop thread; a sync view then runs in an asgiref
executor thread and an async view on the event loop, interleaved with other requests'
coroutines. Under WSGI an async view runs in an event-loop thread asgiref starts for it.
Each request's profile must hold only the stacks that pass through its own view call.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any, ClassVar

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import override_settings

from debug_toolbar_perf.sampling import follow as following
from debug_toolbar_perf.sampling import thread as thread_engine
from debug_toolbar_perf.stacks import thread_stacks
from tests.conftest import ToolbarRun, arun_with_toolbar
from tests.sampling.test_panel import OTHER_PANELS, URLS, perf, share_of

PANEL = "SamplingProfilerPanel"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def asgi_site(transactional_db: Any) -> Any:
    config = {**settings.DEBUG_TOOLBAR_CONFIG, "DISABLE_PANELS": OTHER_PANELS}
    before = sys.getswitchinterval()
    with override_settings(ROOT_URLCONF=URLS, DEBUG_TOOLBAR_CONFIG=config):
        yield
    # Nothing of ours is left running, whatever the test did.
    assert thread_engine.HUB.sessions == []
    assert sys.getswitchinterval() == before


async def record_of(run: ToolbarRun) -> dict[str, Any]:
    return await sync_to_async(run.record)(PANEL)


def names(record: dict[str, Any]) -> set[str]:
    return {f[0] for f in record["functions"]}


def top_level(record: dict[str, Any]) -> list[str]:
    return [record["functions"][n[1]][0] for n in record["nodes"] if n[0] == 0]


def assert_split(record: dict[str, Any]) -> None:
    """The 70/30 split of CPU time, loosely (CPU mode, whose ticks count only while the
    view's thread ran, so a loaded machine does not skew it as it skews wall time)."""
    heavy, light = share_of(record, "heavy_part"), share_of(record, "light_part")
    assert heavy > light > 0.1, (heavy, light)
    assert heavy + light > 0.9, (heavy, light)


@pytest.mark.parametrize("engine", ["auto", "vmprof", "thread"])
async def test_sync_view_in_the_executor_thread(async_client: Any, asgi_site: None, engine: str):
    with override_settings(DEBUG_TOOLBAR_PERF=perf(ENGINE=engine, MODE="cpu")):
        run = await arun_with_toolbar(async_client, "/split/?scale=2")
    assert run.response.status_code == 200
    assert run.live_panel(PANEL).asgi is True
    record = await record_of(run)
    assert record["followed"] and record["engine"] == "thread"
    assert "ASGI" in record["engine_reason"] and "vmprof" in record["engine_reason"]
    assert record["threads"] == 1  # the executor thread, not the loop thread that started us
    assert record["samples"] >= 20, record["samples"]
    assert top_level(record) == ["split_view"]
    assert_split(record)
    html = await sync_to_async(run.content)(PANEL)
    assert "Why this engine: " in html and "ASGI" in html


async def test_async_view_on_the_event_loop(async_client: Any, asgi_site: None):
    with override_settings(DEBUG_TOOLBAR_PERF=perf(MODE="cpu")):
        run = await arun_with_toolbar(async_client, "/async/split/?scale=2")
    assert run.response.status_code == 200
    record = await record_of(run)
    assert record["engine"] == "thread" and record["samples"] >= 20
    assert top_level(record) == ["async_split"]
    assert_split(record)
    # the event loop's own frames (asyncio, asgiref, Django's handler) are cut away
    assert not {n for n in names(record) if "run_once" in n or "run_forever" in n}


@pytest.mark.parametrize(
    ("path_a", "path_b"),
    [
        ("/async/a/?s=0.6", "/async/b/?s=0.6"),
        ("/async/same/?which=a&s=0.6", "/async/same/?which=b&s=0.6"),
    ],
    ids=["two-views", "same-view"],
)
async def test_two_interleaved_async_requests_keep_their_own_stacks(
    async_client: Any, asgi_site: None, path_a: str, path_b: str
):
    """Both views burn CPU on the one event-loop thread in 2 ms slices, taking turns: each
    profile must hold only its own marker; the other request's turns are 'away' ticks."""
    with override_settings(DEBUG_TOOLBAR_PERF=perf()):
        a, b = await asyncio.wait_for(
            asyncio.gather(
                arun_with_toolbar(async_client, path_a), arun_with_toolbar(async_client, path_b)
            ),
            60,
        )
    assert a.response.status_code == b.response.status_code == 200
    assert a.toolbar is not b.toolbar
    for run, own, foreign in (
        (a, "async_a_marker", "async_b_marker"),
        (b, "async_b_marker", "async_a_marker"),
    ):
        record = await record_of(run)
        found = names(record)
        assert own in found, (own, found)
        assert foreign not in found, (foreign, found)
        assert record["samples"] >= 10, record["samples"]
        assert record["away"] > 0  # the other request's turns on the loop
        assert share_of(record, own) > 0.8


async def test_class_based_and_drf_views_are_followed(async_client: Any, asgi_site: None):
    with override_settings(DEBUG_TOOLBAR_PERF=perf(MODE="cpu")):
        cbv = await arun_with_toolbar(async_client, "/cbv/")
        drf = await arun_with_toolbar(async_client, "/drf/", HTTP_ACCEPT="text/html")
    for run, root in ((cbv, "BurningView.get"), (drf, "BurningViewSet.list")):
        assert run.response.status_code == 200
        record = await record_of(run)
        if sys.version_info < (3, 11):  # no co_qualname: the bare function name
            root = root.rsplit(".", 1)[-1]
        assert top_level(record) == [root], top_level(record)
        assert_split(record)


async def test_middleware_scope_is_rooted_at_the_view_and_says_so(
    async_client: Any, asgi_site: None
):
    with override_settings(DEBUG_TOOLBAR_PERF=perf(SCOPE="middleware")):
        run = await arun_with_toolbar(async_client, "/split/?scale=0.5")
    record = await record_of(run)
    assert record["scope"] == "view"
    assert top_level(record) == ["split_view"]
    assert following.FOLLOW_MIDDLEWARE_NOTE in record["notes"]
    html = await sync_to_async(run.content)(PANEL)
    assert "rooted at the view instead" in html


async def test_unresolved_view_is_not_sampled_and_says_why(async_client: Any, asgi_site: None):
    with override_settings(DEBUG_TOOLBAR_PERF=perf()):
        run = await arun_with_toolbar(async_client, "/no-such-page/")
    assert run.response.status_code == 404
    stats = await sync_to_async(run.stats)(PANEL)
    assert not stats["errors"]
    record = stats["record"]
    assert record["not_sampled"] == following.FOLLOW_UNRESOLVED
    assert record["samples"] == 0
    assert await sync_to_async(run.subtitle)(PANEL) == "not sampled"
    html = await sync_to_async(run.content)(PANEL)
    assert "Not sampled." in html and "could not be resolved" in html
    assert "Too thin" not in html and "No samples." not in html


async def test_async_view_that_raises(async_client: Any, asgi_site: None):
    """Django turns the exception into a 500 page; the profile is kept, the sampler stops."""
    async_client.raise_request_exception = False
    with override_settings(DEBUG_TOOLBAR_PERF=perf()):
        run = await arun_with_toolbar(async_client, "/async/raises/")
    assert run.response.status_code == 500
    record = await record_of(run)
    assert top_level(record) == ["async_raises"]
    assert share_of(record, "heavy_part") > 0.8


# --- async views under WSGI --------------------------------------------------------------


@pytest.mark.parametrize("engine", ["auto", "thread"])
def test_async_view_under_wsgi_is_followed_into_the_loop_thread(
    toolbar_client: Any, asgi_site: None, engine: str
):
    """Django runs it through async_to_sync: the coroutine runs in another thread while the
    request thread waits. Sampling the request thread (or vmprof) would show only the wait."""
    with override_settings(DEBUG_TOOLBAR_PERF=perf(ENGINE=engine, MODE="cpu")):
        run = toolbar_client("/async/split/?scale=2")
    assert run.live_panel(PANEL).asgi is False
    record = run.record(PANEL)
    assert record["followed"] and record["engine"] == "thread"
    assert "async_to_sync" in record["engine_reason"]
    assert record["threads"] == 1 and record["samples"] >= 20
    assert top_level(record) == ["async_split"]
    assert_split(record)


# --- the per-frame verdict, directly ---------------------------------------------------


class _FakeDrfRequest:
    def __init__(self, request: object) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:  # DRF proxies unknown attributes
        raise AssertionError(f"the sampler must not call __getattr__ ({name})")


class _Handler:
    def __init__(self, request: object) -> None:
        self.request = request

    def get(self, *args: Any) -> Any:
        return sys._getframe()

    def post(self, request: object) -> Any:
        return sys._getframe()


def test_frame_serves_recognises_every_way_a_view_holds_the_request():
    mine, theirs = object(), object()

    def view(request: object, **kwargs: Any) -> Any:
        return sys._getframe()

    assert following.frame_serves(view(mine), mine)
    assert not following.frame_serves(view(theirs), mine)
    assert following.frame_serves(view(_FakeDrfRequest(mine)), mine)  # DRF Request._request
    assert following.frame_serves(_Handler(mine).get(), mine)  # self.request, no request arg
    assert following.frame_serves(_Handler(theirs).get(mine), mine)  # *args[0]
    assert not following.frame_serves(_Handler(theirs).post(theirs), mine)
    assert following.frame_serves(_Handler(theirs).post(_FakeDrfRequest(mine)), mine)


class _Holder:
    """Holds the request as a view's ``self`` does; notes which thread looks inside."""

    readers: ClassVar[set[str]] = set()

    def __init__(self, request: object) -> None:
        self._d = {"request": request}

    @property  # object.__getattribute__(holder, "__dict__") (frame_serves) comes here
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        type(self).readers.add(threading.current_thread().name)
        return object.__getattribute__(self, "_d")


def held_view(holder: _Holder, release: threading.Event) -> None:
    release.wait(10)
    thread_engine_burn(0.05)


def thread_engine_burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(100))


def test_a_running_view_frame_is_never_read_by_the_sampler():
    """The sampler thread never reads a followed view's locals while it runs (3.13: a
    FrameLocalsProxy over another thread's live fast locals). Its samples are kept per
    call and the call is recognised after the request, once it has returned; another
    request's call still running then is left out without being read."""
    mine, theirs = object(), object()
    _Holder.readers = set()
    follow = following.ViewInvocation(mine, (held_view.__code__,))
    s = thread_engine.ThreadSampler(threading.get_ident(), 1.0, "wall", follow, switch_ms=0.5)
    go_mine, go_theirs = threading.Event(), threading.Event()
    own = threading.Thread(target=held_view, args=(_Holder(mine), go_mine), name="mine")
    other = threading.Thread(target=held_view, args=(_Holder(theirs), go_theirs), name="theirs")
    s.start()
    try:
        own.start()
        other.start()
        time.sleep(0.05)  # both calls on their threads' stacks, sampled
        go_mine.set()
        own.join()
    finally:
        s.stop()  # "theirs" is still running: it is left out without a look inside
    go_theirs.set()
    other.join()
    raw = s.result()
    assert _Holder.readers == {threading.current_thread().name}
    assert raw.threads == 1 and raw.samples > 5
    assert all(frames[0][0] == "held_view" for (frames, _), _ in raw.stacks.items())


def test_an_async_view_is_recognised_by_the_frame_awaiting_it():
    """Under ASGI the panel's own coroutine frame (the anchor) awaits this request's async
    view: found by identity among the frames read with the stack, no locals read; a frame
    of the same code that is not the anchor is another request's; with no such frame
    above, it waits for decide()."""
    follow = following.ViewInvocation(object(), ())

    async def view() -> bool | None:
        here = sys._getframe()  # as the sampler sees it, while it runs
        return follow.anchored(
            here, thread_stacks((threading.get_ident(),))[threading.get_ident()][1:]
        )

    async def panel(mine: bool) -> bool | None:  # plays PerfPanel._finish_async
        if mine:
            follow.anchor = sys._getframe()
        return await view()

    async def main() -> None:
        follow.anchor_code = panel.__code__
        assert await panel(mine=False) is None  # no anchor yet (WSGI, or before astart)
        assert await panel(mine=True) is True
        assert await panel(mine=False) is False  # another request's panel awaits it
        assert await view() is None  # no panel's frame above it: decided after the request

    asyncio.run(main())
    follow.release()
    assert follow.anchor is None and follow.request is None
