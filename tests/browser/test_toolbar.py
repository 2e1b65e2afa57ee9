"""Every perf panel opens in the real toolbar on every demo page, with no JavaScript error."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import open_panel, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PERF_PANELS = [
    "SamplingProfilerPanel",
    "LineMemoryPanel",
    "ModelInstancesPanel",
    "ExplainPanel",
]
DEMO_PAGES = [
    "/cpu/?n=3000",
    "/memory/",
    "/products/n-plus-one/",
    "/products/fixed/",
    "/reviews/summary/",
    "/reviews/summary/fixed/",
    "/products/catalogue/",
    "/products/published/",
    "/products/popular/",
]


def test_home_lists_every_problem_page(page: Any, live_server: Any, seeded_demo: None) -> None:
    page.goto(live_server.url + "/")
    links = page.locator("main a, body > ul a").all_inner_texts()
    assert len(links) >= 9
    assert page.locator("#djDebugToolbar").is_visible()
    screenshot(page, "demo-home")


@pytest.mark.parametrize("path", DEMO_PAGES)
def test_every_panel_renders_on_every_page(
    page: Any, live_server: Any, seeded_demo: None, path: str
) -> None:
    page.goto(live_server.url + path)
    assert page.locator("#djDebugToolbar").is_visible()
    for panel_id in PERF_PANELS:
        panel = open_panel(page, panel_id)
        assert panel.locator(".djdt-perf-error").count() == 0, panel.inner_text()
        page.locator(f"#{panel_id} .djDebugClose").click()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_themes(page: Any, live_server: Any, seeded_demo: None, theme: str) -> None:
    page.goto(live_server.url + "/products/n-plus-one/")
    page.evaluate(
        """(theme) => {
            const root = document.getElementById('djDebugRoot');
            const dj = (root.shadowRoot || document).querySelector('#djDebug');
            dj.setAttribute('data-theme', theme);
        }""",
        theme,
    )
    open_panel(page, "ExplainPanel")
    screenshot(page, f"explain-{theme}")
