"""LineMemoryPanel under ASGI: Django's AsyncClient (a real ASGIRequest) and Django's own
ASGI handler (a thread per request for sync code).

Under ASGI the panel's start hook runs in the event-loop thread; a sync view runs in
asgiref's executor thread, an async view in the event-loop thread between other requests'
tasks. The engine follows the request's ContextVar (3.12+: sys.monitoring fires in every
thread; 3.10/3.11: the trace function is installed in the executor thread too), and charges
a coroutine's await line only for what changed while it was parked when nothing else ran.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from debug_toolbar.toolbar import DebugToolbar
from django.conf import settings
from django.test import override_settings

from debug_toolbar_perf.line_memory import state as engine
from tests.conftest import ToolbarRun, arun_with_toolbar
from tests.line_memory import line_memory_urls as views
from tests.line_memory.test_panel import MIB, OTHER_PANELS, PANEL, URLS, lineno, perf

BIG = 6_000_000 * 8 / MIB  # a list of 6M pointers: 45.8 MiB
HOG = 13_000_000 * 8 / MIB  # 99.2 MiB

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def asgi_site(transactional_db: Any) -> Any:
    config = {**settings.DEBUG_TOOLBAR_CONFIG, "DISABLE_PANELS": OTHER_PANELS}
    views.reset_async()
    with override_settings(
        ROOT_URLCONF=URLS, DEBUG_TOOLBAR_CONFIG=config, DEBUG_TOOLBAR_PERF=perf()
    ):
        yield
    views.async_holds.clear()


async def record_of(run: ToolbarRun) -> dict[str, Any]:
    return await sync_to_async(run.record)(PANEL)


def rows(record: dict[str, Any], name: str) -> dict[int, list[int]]:
    found = [f for f in record["functions"] if f["name"] == name]
    assert found, f"{name} not traced: {[f['name'] for f in record['functions']]}, {record}"
    return {r[0]: r for r in found[0]["lines"]}


def inc(record: dict[str, Any], func: Any, marker: str) -> float:
    """The line's figure, in Increment or - if another thread happened to use CPU meanwhile
    (e.g. the test server's polling thread left by an earlier test) - under "Others ran".

    Exactly one of the two holds it: an interval is never split or counted twice.
    """
    row = rows(record, func.__name__)[lineno(func, marker)]
    assert row[1] == 0 or row[4] == 0, row
    return (row[1] + row[4]) / MIB


def no_tracing_left() -> None:
    assert sys.gettrace() is None
    if engine.MONITORING:
        assert engine.TOOL_NAME not in [sys.monitoring.get_tool(i) for i in range(6)]


async def test_sync_view_runs_in_the_executor_thread_and_is_measured(
    async_client: Any, asgi_site: None
) -> None:
    run = await arun_with_toolbar(async_client, "/sync-alloc/")
    assert run.response.status_code == 200
    assert run.live_panel(PANEL).asgi is True
    record = await record_of(run)
    assert record["asgi"] is True and not record["problem"]
    assert inc(record, views.sync_alloc, "# SYNC-ALLOC") == pytest.approx(BIG, rel=0.10)
    assert inc(record, views.sync_alloc, "# SYNC-FREE") == pytest.approx(-BIG, rel=0.10)
    assert engine.CURRENT.get() is None  # unbound again in the caller's context
    no_tracing_left()
    # ... and the trace function left asgiref's executor thread too (3.10/3.11).
    assert await sync_to_async(sys.gettrace, thread_sensitive=True)() is None
    html = await sync_to_async(run.content)(PANEL)
    assert "SYNC-ALLOC" in html


async def test_async_view_is_measured_across_its_await(async_client: Any, asgi_site: None) -> None:
    run = await arun_with_toolbar(async_client, "/async-alloc/")
    assert run.response.status_code == 200
    record = await record_of(run)
    func = views.async_alloc
    assert inc(record, func, "# ASYNC-ALLOC") == pytest.approx(BIG, rel=0.10)
    assert inc(record, func, "# ASYNC-FREE") == pytest.approx(-BIG, rel=0.10)
    # The await parked the coroutine once; nothing else ran meanwhile, so nothing kept apart.
    assert record["suspensions"] >= 1
    await_row = rows(record, "async_alloc")[lineno(func, "# ASYNC-AWAIT")]
    assert await_row[2] == 1  # one occurrence: resuming is not a new execution of the line
    assert abs(await_row[1]) / MIB < 2.0
    [entry] = [f for f in record["functions"] if f["name"] == "async_alloc"]
    assert entry["calls"] == 1  # resuming is not a new call
    no_tracing_left()


async def test_concurrent_async_request_allocating_while_this_one_awaits(
    async_client: Any, asgi_site: None
) -> None:
    """One event loop: the hog allocates 100 MB while the waiter is parked on an await."""
    waiter, hog = await asyncio.wait_for(
        asyncio.gather(
            arun_with_toolbar(async_client, "/async-waiter/"),
            arun_with_toolbar(async_client, "/async-hog/"),
        ),
        60,
    )
    assert waiter.response.status_code == hog.response.status_code == 200
    w, h = await record_of(waiter), await record_of(hog)
    views.async_holds.clear()
    # The hog's own panel has its 100 MB on its line (the waiter was parked meanwhile).
    assert [f["name"] for f in h["functions"]] == ["async_hog"]
    hog_row = rows(h, "async_hog")[lineno(views.async_hog, "# HOG-ALLOC")]
    assert (hog_row[1] + hog_row[4]) / MIB == pytest.approx(HOG, rel=0.10)
    # The waiter: its own 48 MB on its own line, and not the hog's 100 MB anywhere in
    # Increment: the change over its parked await is kept apart, flagged.
    assert [f["name"] for f in w["functions"]] == ["async_waiter"]
    func = views.async_waiter
    w_rows = rows(w, "async_waiter")
    alloc = w_rows[lineno(func, "# WAITER-ALLOC")]
    wait = w_rows[lineno(func, "# WAITER-WAIT")]
    assert (alloc[1] + alloc[4]) / MIB == pytest.approx(BIG, rel=0.10)
    assert abs(wait[1]) / MIB < 2.0, wait
    assert wait[4] / MIB == pytest.approx(HOG, rel=0.10) and wait[5] >= 1
    assert w["suspensions_shared"] >= 1
    assert sum(r[1] for r in w_rows.values()) / MIB < BIG + 2.0
    html = await sync_to_async(waiter.content)(PANEL)
    assert "Others ran" in html
    subtitle = await sync_to_async(waiter.subtitle)(PANEL)
    if "+99." in subtitle or "+98." in subtitle:  # the hog's amount only ever as a doubt
        assert subtitle.endswith("?"), subtitle
    no_tracing_left()


async def test_django_asgi_handler_thread_per_request(asgi_site: None) -> None:
    """Django's ASGIHandler runs each request's sync code in a thread of its own
    (ThreadSensitiveContext): the sync view is measured there."""
    from django.core.handlers.asgi import ASGIHandler

    created: list[DebugToolbar] = []

    def grab(sender: Any, toolbar: DebugToolbar, **_: Any) -> None:
        created.append(toolbar)

    sent: list[dict[str, Any]] = []
    never = asyncio.Event()
    first = [True]

    async def receive() -> dict[str, Any]:
        if first[0]:
            first[0] = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()  # the client never disconnects
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/sync-alloc/",
        "raw_path": b"/sync-alloc/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    DebugToolbar._created.connect(grab, weak=False)
    try:
        await asyncio.wait_for(ASGIHandler()(scope, receive, send), 30)
    finally:
        DebugToolbar._created.disconnect(grab)
    assert sent[0]["status"] == 200
    run = ToolbarRun(response=None, toolbar=created[-1])
    record = await record_of(run)
    assert inc(record, views.sync_alloc, "# SYNC-ALLOC") == pytest.approx(BIG, rel=0.10)
    no_tracing_left()
