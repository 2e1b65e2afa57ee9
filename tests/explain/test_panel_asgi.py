"""ExplainPanel under ASGI, through Django's AsyncClient (the ASGI handler path: an
ASGIRequest, sync views in asgiref's executor, the end of the request in the event loop),
on SQLite, PostgreSQL and MariaDB: sync and async views, concurrent requests, a pool thread,
and the EXPLAIN ANALYZE endpoint.

Under ``async_to_sync`` (how these tests drive the event loop) asgiref's thread-sensitive
executor is this test's thread, so every request shares one connection per alias, as
concurrent requests share asgiref's single executor thread outside a server: only the
ContextVar tells the requests' statements apart.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import connections
from django.test import AsyncClient, override_settings
from django.test.utils import CaptureQueriesContext

from debug_toolbar_perf.conf import get_config
from debug_toolbar_perf.explain.capture import current_session
from debug_toolbar_perf.explain.findings import analyse
from shop.models import Category, Product
from tests.conftest import ToolbarRun, arun_with_toolbar
from tests.explain import explain_urls as explain_urls
from tests.explain.seed import alias_params
from tests.explain.test_panel import _analyze_url_and_signed

TESTS = Path(__file__).resolve().parents[1]
URLS = os.path.abspath(explain_urls.__file__)


@pytest.fixture(autouse=True)
def _asgi(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # A database call in the event loop must raise, as in production.
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)
    perf = {"PROJECT_PATHS": [str(TESTS), str(TESTS.parent / "demo")]}
    with override_settings(ROOT_URLCONF="tests.explain.explain_urls", DEBUG_TOOLBAR_PERF=perf):
        yield
    assert current_session() is None


def seed(alias: str) -> None:
    cats = Category.objects.using(alias).bulk_create([Category(name=f"Cat {i}") for i in range(4)])
    Product.objects.using(alias).bulk_create(
        [Product(name=f"P{i}", category=cats[i % 4], price=i, popularity=i) for i in range(12)]
    )


def arun(path: str, method: str = "get", **kwargs: Any) -> ToolbarRun:
    client = AsyncClient(raise_request_exception=False)
    run = async_to_sync(arun_with_toolbar)(client, path, method, **kwargs)
    assert isinstance(run.toolbar.request, ASGIRequest)
    return run


def selects(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in record["shapes"] if s["kind"] == "select"]


def n_plus_one(record: dict[str, Any]) -> list[dict[str, Any]]:
    shapes = analyse(record, get_config()["EXPLAIN"])
    return [f for s in shapes for f in s["findings"] if f["code"] == "n_plus_one"]


def source_of(line: dict[str, Any]) -> str:
    return line["code"].split("#")[-1].strip()


ALIASES = alias_params()


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.django_db(databases="__all__")
def test_sync_view_explained_in_the_executor_thread(alias: str) -> None:
    seed(alias)
    with CaptureQueriesContext(connections[alias]) as seen:
        run = arun(f"/explain/sync/?db={alias}")
    assert run.response.status_code == 200
    record = run.record("ExplainPanel")  # no error: nothing touched the database in the loop
    shapes = selects(record)
    assert len(shapes) == 2 and all(s["plan"] for s in shapes), shapes
    assert {s["alias"] for s in shapes} == {alias}
    assert record["explained_early"] == 0  # at the end of the view, in the view's thread
    assert sorted(s["count"] for s in shapes) == [1, explain_urls.REPEATS]
    # The panel's statements are not the request's: not in Django's log nor the SQL panel.
    view_queries = [q["sql"] for q in seen.captured_queries]
    assert len(view_queries) == 1 + explain_urls.REPEATS, view_queries
    logged = [q["sql"] for q in run.stats("SQLPanel")["queries"]]
    assert len(logged) == 1 + explain_urls.REPEATS
    for sql in view_queries + logged:
        assert "EXPLAIN" not in sql.upper() and "djdt_perf" not in sql
    (finding,) = n_plus_one(record)
    line = finding["evidence"]["line"]
    assert line["file"] == URLS and source_of(line) == "sync N+1"
    assert finding["evidence"]["count"] == explain_urls.REPEATS


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.django_db(databases="__all__")
def test_async_view_with_async_orm_and_sync_to_async(alias: str) -> None:
    seed(alias)
    with CaptureQueriesContext(connections[alias]) as seen:
        run = arun(f"/explain/async/?db={alias}")
    assert run.response.status_code == 200
    record = run.record("ExplainPanel")
    shapes = selects(record)
    # afirst, aget (x REPEATS), async for, sync_to_async(count), acount
    assert len(shapes) == 5 and all(s["plan"] for s in shapes), shapes
    assert record["statements"] == 4 + explain_urls.REPEATS
    assert len(seen.captured_queries) == record["statements"]
    assert not any("EXPLAIN" in q["sql"].upper() for q in seen.captured_queries)
    # The issuing line of an async ORM call is the view's await, found in the request
    # task's awaits (the executor thread's stack holds only asgiref and Django).
    (finding,) = n_plus_one(record)
    line = finding["evidence"]["line"]
    assert line["file"] == URLS and source_of(line) == "async N+1", line
    by_source = {source_of(s["lines"][0]): s for s in shapes}
    assert "via sync_to_async" in by_source  # a project sync function: its own line


def _column_paths(alias: str) -> list[str]:
    columns = explain_urls.COLUMNS
    paths = [f"/explain/async-column/?db={alias}&col={c}" for c in columns[:-1]]
    return [*paths, f"/explain/sync-column/?db={alias}&col={columns[-1]}"]


def _check_own_shapes(
    paths: list[str], runs: list[ToolbarRun], new_connections: bool = False
) -> None:
    """Each request holds its own product shape, all its repeats, explained, and nothing of
    another request. ``new_connections``: each request opened its connection, so Django's
    one-off server query (``SELECT VERSION(), @@sql_mode ...`` on MySQL) is its own too."""
    columns = explain_urls.COLUMNS
    for path, run in zip(paths, runs, strict=True):
        col = path.rsplit("=", 1)[1]
        record = run.record("ExplainPanel")
        shapes = record["shapes"]
        seen = [(s["fingerprint"][:90], s["count"], s.get("plan_error")) for s in shapes]
        if new_connections:
            shapes = [s for s in shapes if "shop_" in s["fingerprint"]]
            assert all(
                s["fingerprint"].startswith("SELECT VERSION()")
                for s in record["shapes"]
                if s not in shapes
            ), seen
        else:
            assert record["statements"] == explain_urls.REPEATS, (col, seen)
        (shape,) = shapes
        assert shape["count"] == explain_urls.REPEATS and shape["plan"]
        shown = shape["fingerprint"].replace("`", '"')
        assert [c for c in columns if f'"shop_product"."{c}"' in shown] == [col], shown


MYSQLCLIENT_SHARED = (
    "mysqlclient 2.3 refuses this test's shared connection: concurrent AsyncClient requests "
    "fail with 'This connection is already in use from another thread' in the view's own "
    "queries, without the ExplainPanel too (reproduced: 40 of 50 requests). A server gives "
    "each request its own thread and connection: see the per-thread variant."
)


@pytest.mark.parametrize(
    "alias",
    [
        pytest.param("default", id="sqlite"),
        pytest.param("postgres", id="postgresql", marks=pytest.mark.postgres),
        pytest.param(
            "mariadb",
            id="mariadb",
            marks=[pytest.mark.mariadb, pytest.mark.skip(MYSQLCLIENT_SHARED)],
        ),
    ],
)
@pytest.mark.django_db(databases="__all__")
def test_concurrent_requests_on_one_shared_connection(alias: str) -> None:
    """Five requests at once on one event loop, sharing one executor thread and one
    connection, their statements interleaved: each panel holds its own shape only."""
    seed(alias)
    paths = _column_paths(alias)
    client = AsyncClient()

    async def all_at_once() -> list[ToolbarRun]:
        return list(await asyncio.gather(*(arun_with_toolbar(client, p) for p in paths)))

    with CaptureQueriesContext(connections[alias]) as seen:
        # The test's own thread runs every request's database work: an outer async_to_sync
        # sends thread-sensitive calls to the thread that called it.
        runs = async_to_sync(all_at_once)()
    issued = [q["sql"].replace("`", '"') for q in seen.captured_queries]
    columns = explain_urls.COLUMNS
    order = [next(c for c in columns if f'."{c}"' in sql) for sql in issued]
    assert order[: len(columns)] != [order[0]] * len(columns), "the requests did not interleave"
    _check_own_shapes(paths, runs)


@pytest.mark.parametrize(
    "alias",
    [
        pytest.param("postgres", id="postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
    ],
)
@pytest.mark.django_db(databases="__all__")
def test_concurrent_requests_each_in_its_own_thread(alias: str) -> None:
    """As under a server: each request in its own ThreadSensitiveContext, so its sync view
    and async ORM calls run in a thread of its own, on a connection of its own, all at once.
    (Those connections are outside the test's transaction: the rows are not there, the
    statements and their plans are.)

    ``asyncio.run``, not ``async_to_sync``: under an outer async_to_sync, asgiref sends every
    thread-sensitive call to the calling thread whatever the ThreadSensitiveContext, and
    all five requests would share the test's one connection (measured: asgiref 3.13).
    """
    paths = _column_paths(alias)
    client = AsyncClient()

    async def one(path: str) -> ToolbarRun:
        async with ThreadSensitiveContext():
            try:
                return await arun_with_toolbar(client, path)
            finally:  # in this request's thread: its connection must not outlive the test
                await sync_to_async(connections.close_all)()

    async def all_at_once() -> list[ToolbarRun]:
        return list(await asyncio.gather(*(one(p) for p in paths)))

    runs = asyncio.run(all_at_once())
    _check_own_shapes(paths, runs, new_connections=True)


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.django_db(databases="__all__", transaction=True)
def test_pool_thread_statement_explained_on_its_own_connection(alias: str) -> None:
    """sync_to_async(thread_sensitive=False): another thread, another connection, closed
    before the end of the view: explained right after its first run, on that connection."""
    seed(alias)
    run = arun(f"/explain/unsafe-thread/?db={alias}")
    assert run.response.status_code == 200
    record = run.record("ExplainPanel")
    shapes = {source_of(s["lines"][0]): s for s in selects(record)}
    stacks = {k: [(f["function"], f["line"]) for f in s["stack"]] for k, s in shapes.items()}
    # Both exact, including the view's own statement when the executor thread starts it
    # before the event loop has suspended the view (then found on the loop thread's stack).
    assert set(shapes) == {"in a pool thread", "in the view"}, stacks
    assert all(s["plan"] for s in shapes.values()), shapes
    assert record["explained_early"] == 1  # the pool thread's; the view's at the end


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.django_db(databases="__all__")
def test_analyze_endpoint_under_asgi(alias: str) -> None:
    seed(alias)
    run = arun(f"/explain/sync/?db={alias}")
    url, signed = _analyze_url_and_signed(run.content("ExplainPanel"))
    response = async_to_sync(AsyncClient().post)(url, {"signed": signed})
    assert response.status_code == 200, response.content
    content = response.json()["content"]
    assert "EXPLAIN ANALYZE" in content and "actual" in content
    forged = async_to_sync(AsyncClient().post)(url, {"signed": signed[:-3] + "xyz"})
    assert forged.status_code == 400


@pytest.mark.django_db
def test_view_that_raises_is_still_explained() -> None:
    seed("default")
    run = arun("/explain/raises/")
    assert run.response.status_code == 500
    shapes = selects(run.record("ExplainPanel"))
    assert len(shapes) == 1 and shapes[0]["plan"]


def test_panel_is_on_under_asgi() -> None:
    from debug_toolbar.toolbar import DebugToolbar
    from django.http import HttpResponse
    from django.test import AsyncRequestFactory

    from debug_toolbar_perf.panels import ExplainPanel

    assert ExplainPanel.is_async is True
    asgi = DebugToolbar(AsyncRequestFactory().get("/"), lambda r: HttpResponse())
    assert asgi.get_panel_by_id("ExplainPanel").enabled
