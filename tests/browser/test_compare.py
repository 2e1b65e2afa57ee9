"""Across requests in the browser: the N+1 page, then its fixed twin compared with it in every
perf panel (the baseline picked from the stored requests), and an unchanged reload."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import open_panel, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PANELS = ("SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel")


def pick_baseline(panel: Any, path: str) -> Any:
    """Choose the stored request of ``path`` in the panel's "Compare with" list."""
    select = panel.locator("select[data-perf-compare-url]")
    value = select.locator("option", has_text=f"GET {path}").first.get_attribute("value")
    select.select_option(value=value)
    result = panel.locator(".djdt-perf-compare-result")
    result.locator(f"code:text-is('{path}')").wait_for(timeout=30_000)
    return result


def test_fixed_twin_against_the_n_plus_one_page(
    page: Any, live_server: Any, seeded_demo: None
) -> None:
    page.goto(live_server.url + "/products/n-plus-one/")
    page.goto(live_server.url + "/products/fixed/")
    for panel_id in PANELS:
        panel = open_panel(page, panel_id)
        assert "no earlier request of this view" in panel.inner_text()
        result = pick_baseline(panel, "/products/n-plus-one/")
        text = result.inner_text()
        assert "\u0394 against GET /products/n-plus-one/" in text, (panel_id, text)
        if panel_id == "ExplainPanel":
            assert "N+1 on shop.Category fixed: \u221250 queries" in text
            assert "N+1 on shop.Review fixed: \u221250 queries" in text
            screenshot(page, "compare-explain-fixed")
        if panel_id == "ModelInstancesPanel":
            assert "N+1 on shop.Category fixed" in text
        page.locator(f"#{panel_id} .djDebugClose").click()


def test_unchanged_reload_says_no_significant_change(
    page: Any, live_server: Any, seeded_demo: None
) -> None:
    page.goto(live_server.url + "/products/n-plus-one/")
    page.goto(live_server.url + "/products/n-plus-one/")
    for panel_id in ("ModelInstancesPanel", "ExplainPanel"):
        subtitle = page.locator(f"#djDebugToolbar a.{panel_id}").inner_text()
        assert "\u0394" not in subtitle, subtitle
        panel = open_panel(page, panel_id)
        text = panel.locator(".djdt-perf-compare-result").inner_text()
        assert "No significant change." in text and "the previous request of this view" in text
        page.locator(f"#{panel_id} .djDebugClose").click()
