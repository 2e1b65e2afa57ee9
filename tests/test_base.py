"""The shared base: faults never reach the page, stats survive the store, errors show inside."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.template.loader import render_to_string
from django.test import Client, override_settings

from tests.conftest import arun_with_toolbar, run_with_toolbar, strip_toolbar
from tests.testapp.panels import ProbePanel

PANELS = ["debug_toolbar.panels.sql.SQLPanel", "tests.testapp.panels.ProbePanel"]


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[ProbePanel]]:
    monkeypatch.setattr(ProbePanel, "fail_at", None)
    monkeypatch.setattr(ProbePanel, "started", 0)
    monkeypatch.setattr(ProbePanel, "stopped", 0)
    with override_settings(DEBUG_TOOLBAR_PANELS=PANELS):
        yield ProbePanel


def body_without_toolbar(response: Any) -> bytes:
    return strip_toolbar(response.content)


def test_record_is_rendered_from_the_store(client: Client, probe: type[ProbePanel]) -> None:
    run = run_with_toolbar(client, "/t/cbv/")
    assert run.record("ProbePanel") == {
        "label": "tests.testapp.views.ClassBased.get",
        "status": 200,
    }
    html = run.content("ProbePanel")
    assert "tests.testapp.views.ClassBased.get" in html
    assert run.subtitle("ProbePanel") == "status 200"
    assert run.stats("ProbePanel")["target"] == {
        "label": "tests.testapp.views.ClassBased.get",
        "kind": "class-based",
    }


@pytest.mark.parametrize("stage", ["start", "stop", "record", "json", "render"])
def test_a_failing_panel_never_changes_the_page(
    client: Client, probe: type[ProbePanel], stage: str
) -> None:
    with override_settings(DEBUG_TOOLBAR_PANELS=PANELS[:1]):
        baseline = client.get("/t/plain/")
    probe.fail_at = stage
    run = run_with_toolbar(client, "/t/plain/")
    assert run.response.status_code == baseline.status_code
    assert body_without_toolbar(run.response) == body_without_toolbar(baseline)
    html = run.content("ProbePanel")
    assert "This panel failed" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html or stage == "json"
    assert "<script>alert(1)" not in html
    if stage == "json":
        assert "not JSON-native" in html
    if stage not in ("start",):
        assert probe.stopped == 1  # the engine is always stopped


def test_failing_subtitle_says_error(client: Client, probe: type[ProbePanel]) -> None:
    probe.fail_at = "subtitle"
    run = run_with_toolbar(client, "/t/plain/")
    assert run.subtitle("ProbePanel") == "error"


def test_view_that_raises_still_stops_and_records(client: Client, probe: type[ProbePanel]) -> None:
    client.raise_request_exception = False
    run = run_with_toolbar(client, "/t/raises/")
    assert run.response.status_code == 500
    assert probe.started == 1
    assert probe.stopped == 1


def test_missing_engine_is_shown_with_the_fix(
    client: Client, probe: type[ProbePanel], monkeypatch: pytest.MonkeyPatch
) -> None:
    from debug_toolbar_perf.availability import EngineProblem

    monkeypatch.setattr(
        ProbePanel, "engine_problem", lambda self: EngineProblem("Probe needs x.", "pip install x")
    )
    run = run_with_toolbar(client, "/t/plain/")
    assert probe.started == 0
    html = run.content("ProbePanel")
    assert "cannot measure here" in html
    assert "pip install x" in html
    assert run.subtitle("ProbePanel") == "not available"


@pytest.mark.parametrize("path", ["/t/plain/", "/t/async-plain/"])
async def test_under_asgi_the_engine_stops_after_the_view(
    async_client: Any, probe: type[ProbePanel], path: str
) -> None:
    """Under ASGI the chain returns a coroutine: the panel is on, and stop waits for the view."""
    run = await arun_with_toolbar(async_client, path)
    assert run.response.status_code == 200
    assert run.live_panel("ProbePanel").asgi is True
    assert (probe.started, probe.stopped) == (1, 1)
    record = await sync_to_async(run.record)("ProbePanel")
    assert record["status"] == 200


async def test_under_asgi_a_failing_stop_never_changes_the_page(
    async_client: Any, probe: type[ProbePanel]
) -> None:
    probe.fail_at = "stop"
    run = await arun_with_toolbar(async_client, "/t/async-plain/")
    assert run.response.status_code == 200
    assert b"async plain" in run.response.content
    html = await sync_to_async(run.content)("ProbePanel")
    assert "This panel failed" in html


def test_a_page_s_templates_panel_leaves_out_our_panels_rendered_meanwhile(
    client: Client, probe: type[ProbePanel], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The toolbar's Templates panel records every template rendered in any thread while its
    request runs. Under gunicorn gthread it stored our panels, rendered for other requests
    in the meantime, with their whole context (up to 8.7 MB of JSON for one page); glibc's
    arenas kept what that freed (RSS after malloc_trim +40 MB over 800 requests)."""
    from debug_toolbar import settings as dt_settings

    panels = [
        "debug_toolbar.panels.templates.TemplatesPanel",
        "debug_toolbar_perf.panels.ModelInstancesPanel",
        "tests.testapp.panels.ProbePanel",
    ]
    with override_settings(DEBUG_TOOLBAR_PANELS=panels):
        earlier = run_with_toolbar(client, "/t/cbv/")
        rendered: list[str] = []

        def other_thread() -> None:  # what a render_panel request does meanwhile
            rendered.append(earlier.content("ModelInstancesPanel"))
            rendered.append(render_to_string("shop/simple.html", {"title": "t"}))

        def start(self: ProbePanel, request: Any, target: Any) -> dict[str, Any]:
            worker = threading.Thread(target=other_thread)
            worker.start()
            worker.join()
            return {"label": target.label}

        monkeypatch.setattr(ProbePanel, "start", start)
        page = run_with_toolbar(client, "/t/plain/")
        recorded = [t["template"]["name"] for t in page.stats("TemplatesPanel")["templates"]]
    assert len(rendered) == 2 and "djdt-perf" in rendered[0]
    assert "shop/simple.html" in recorded  # it did record the other thread's templates
    assert not [name for name in recorded if name.startswith("debug_toolbar_perf/")], recorded
    # the toolbar's copy of the config, never the user's settings
    assert "debug_toolbar_perf/" not in dt_settings.get_config()["SKIP_TEMPLATE_PREFIXES"]
