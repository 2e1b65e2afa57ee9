"""A real headless Chromium (Debian's package) driven by Playwright, against a live demo server.

Never runs ``playwright install``: it uses /usr/bin/chromium (PERF_CHROMIUM overrides).
Any JavaScript console error or uncaught page error fails the test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_SERVICES

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM = os.environ.get("PERF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"browser tests required but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    # Playwright runs an event loop in this thread; the live server's database
    # access happens in other threads, so Django's async guard must be relaxed here.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class ConsoleWatch:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def on_console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def on_pageerror(self, error: Any) -> None:
        self.errors.append(f"pageerror: {error}")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    watch = ConsoleWatch()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_pageerror)
    page.console_watch = watch
    yield page
    context.close()
    assert watch.errors == [], "JavaScript errors in the browser:\n" + "\n".join(watch.errors)


@pytest.fixture
def seeded_demo(transactional_db: Any) -> None:
    from shop.seed import seed

    seed(products=20_000, reviews=2_000)


def open_panel(page: Any, panel_id: str) -> Any:
    """Click a panel's button in the toolbar and wait until its content is rendered."""
    page.locator(f"#djDebugToolbar a.{panel_id}").click()
    content = page.locator(f"#{panel_id} .djdt-scroll")
    content.locator(".djdt-perf").first.wait_for(state="visible", timeout=30_000)
    return page.locator(f"#{panel_id}")


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
