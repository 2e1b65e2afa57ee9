"""Shared test helpers: real databases, the toolbar's store round trip, HTML validity."""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import html5lib
import pytest
from debug_toolbar.toolbar import DebugToolbar
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.test import Client
from django.urls import clear_url_caches

from debug_toolbar_perf.store import stored_panel

REQUIRE_SERVICES = os.environ.get("PERF_REQUIRE_SERVICES") == "1"


@receiver(setting_changed)
def _rebuild_toolbar_urls(*, setting: str, **kwargs: Any) -> None:
    """The toolbar builds its URL list once from the panel list; rebuild it when tests change it.

    Without this a test that overrides DEBUG_TOOLBAR_PANELS first fixes the URLs for the whole
    session (e.g. no History URLs, or no perf export URL).
    """
    if setting != "DEBUG_TOOLBAR_PANELS":
        return
    import debug_toolbar.urls
    from debug_toolbar.settings import get_panels

    import demo_site.urls
    import tests.urls

    # The toolbar's own receiver may run after this one: clear its panel caches first.
    get_panels.cache_clear()
    DebugToolbar._panel_classes = None
    DebugToolbar._urlpatterns = None
    importlib.reload(debug_toolbar.urls)  # `include("debug_toolbar.urls")` reads its list
    importlib.reload(demo_site.urls)
    importlib.reload(tests.urls)
    clear_url_caches()


@pytest.fixture(autouse=True)
def _line_memory_on_by_default(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests see every panel on; the tests of the panel's own default opt out with a marker."""
    if request.node.get_closest_marker("real_panel_defaults"):
        return
    from debug_toolbar_perf.line_memory.panel import LineMemoryPanel

    monkeypatch.setattr(LineMemoryPanel, "enabled_by_default", lambda self: True)


@pytest.fixture(autouse=True)
def _fresh_toolbar_store() -> None:
    """Each test starts with an empty toolbar store, so no panel compares with (and no
    subtitle shows a Δ against) a request an earlier test made."""
    from debug_toolbar.store import get_store

    from debug_toolbar_perf import baseline

    get_store().clear()
    baseline.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip (or, under PERF_REQUIRE_SERVICES=1, fail) tests whose database server is down."""
    for item in items:
        for alias in ("postgres", "mariadb"):
            if item.get_closest_marker(alias) and alias not in settings.DATABASES:
                reason = (
                    f"{alias} is not reachable on 127.0.0.1 "
                    f"(start it, or see README: running the tests)"
                )
                if REQUIRE_SERVICES:
                    item.add_marker(pytest.mark.xfail(reason=reason, run=False, strict=True))
                    item.user_properties.append(("required_service_missing", alias))
                else:
                    item.add_marker(pytest.mark.skip(reason=reason))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE_SERVICES:
        missing = sorted({a for a in ("postgres", "mariadb") if a not in settings.DATABASES})
        if missing:
            print(f"\nPERF_REQUIRE_SERVICES=1 but not reachable: {', '.join(missing)}")
            session.exitstatus = 1


_TOOLBAR_START = re.compile(rb"<(?:link|script|div|template)[^>]*(?:debug_toolbar/|djDebug)")


def strip_toolbar(content: bytes) -> bytes:
    """The page as the view made it: the toolbar's insertion before </body> removed (DDT 6-8)."""
    start = _TOOLBAR_START.search(content)
    if start is None:
        return content
    end = content.rfind(b"</body>")
    return content[: start.start()] + (content[end:] if end > start.start() else b"")


def assert_valid_html(fragment: str) -> None:
    """Parse the fragment with html5lib in strict mode, as django-debug-toolbar's tests do."""
    parser = html5lib.HTMLParser(strict=True)
    parser.parseFragment(fragment)


@dataclass
class ToolbarRun:
    """One request through the real toolbar, with its panels reloaded from the store."""

    response: Any
    toolbar: DebugToolbar

    @property
    def request_id(self) -> str:
        return self.toolbar.request_id

    def live_panel(self, panel_id: str) -> Any:
        return self.toolbar.get_panel_by_id(panel_id)

    def stored_panel(self, panel_id: str) -> Any:
        """A fresh panel instance built from the JSON store only (what the browser sees)."""
        stored = stored_panel(self.request_id, panel_id)
        assert stored is not None, "request not in the toolbar's store"
        return stored

    def stats(self, panel_id: str) -> dict[str, Any]:
        return self.stored_panel(panel_id).get_stats()

    def record(self, panel_id: str) -> dict[str, Any]:
        stats = self.stats(panel_id)
        assert not stats.get("errors"), stats.get("errors")
        assert stats.get("record"), stats
        return stats["record"]

    def content(self, panel_id: str) -> str:
        html = self.stored_panel(panel_id).content
        assert_valid_html(html)
        return html

    def subtitle(self, panel_id: str) -> str:
        return self.stored_panel(panel_id).nav_subtitle


def run_with_toolbar(client: Client, path: str, method: str = "get", **kwargs: Any) -> ToolbarRun:
    created: list[DebugToolbar] = []

    def _grab(sender: Any, toolbar: DebugToolbar, **_: Any) -> None:
        created.append(toolbar)

    DebugToolbar._created.connect(_grab)
    try:
        response = getattr(client, method)(path, **kwargs)
    finally:
        DebugToolbar._created.disconnect(_grab)
    assert created, "the toolbar did not run for this request (DEBUG? INTERNAL_IPS?)"
    return ToolbarRun(response=response, toolbar=created[-1])


async def arun_with_toolbar(
    client: Any, path: str, method: str = "get", **kwargs: Any
) -> ToolbarRun:
    """``run_with_toolbar`` for Django's ``AsyncClient``: the real ASGI path (an ASGIRequest)."""
    created: list[DebugToolbar] = []

    def _grab(sender: Any, toolbar: DebugToolbar, **_: Any) -> None:
        created.append(toolbar)

    DebugToolbar._created.connect(_grab, weak=False)
    try:
        response = await getattr(client, method)(path, **kwargs)
    finally:
        DebugToolbar._created.disconnect(_grab)
    assert created, "the toolbar did not run for this request (DEBUG? INTERNAL_IPS?)"
    request = getattr(response, "asgi_request", None)
    mine = [t for t in created if t.request is request] or created
    return ToolbarRun(response=response, toolbar=mine[-1])


@pytest.fixture
def toolbar_client(client: Client) -> Iterator[Any]:
    """``toolbar_client(path)`` runs a request through the toolbar and returns a ToolbarRun."""

    def _run(path: str, method: str = "get", **kwargs: Any) -> ToolbarRun:
        return run_with_toolbar(client, path, method, **kwargs)

    yield _run


def qual(name: str) -> str:
    """A function as the sampler names it: Python 3.10 has no ``co_qualname`` (no class)."""
    return name if sys.version_info >= (3, 11) else name.rsplit(".", 1)[-1]
