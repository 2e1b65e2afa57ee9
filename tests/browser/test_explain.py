"""The ExplainPanel as a person sees it: the unindexed-filter page, its finding, ANALYZE."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import open_panel, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_unindexed_page_shows_full_scan_and_partial_index(
    page: Any, live_server: Any, seeded_demo: None
) -> None:
    page.goto(live_server.url + "/products/published/")
    panel = open_panel(page, "ExplainPanel")
    finding = panel.locator('[data-finding="full_scan"]').first
    finding.wait_for(state="visible")
    assert "Full scan of shop_product" in finding.inner_text()
    assert (
        "CREATE INDEX shop_product_published_idx ON shop_product (id) WHERE published"
        in finding.inner_text()
    )
    assert panel.locator(".djdt-perf-plan-finding").count() >= 1  # highlighted on its node
    sidebar = page.locator("#djDebugToolbar a.ExplainPanel").inner_text()
    assert "2 shapes explained · 1 finding" in sidebar  # was "2 shapes explained · 1 findings"
    screenshot(page, "explain-unindexed")

    # EXPLAIN ANALYZE on demand: signed shape id in, analysed plan out.
    panel.locator("button.djdt-perf-analyze").first.click()
    result = panel.locator(".djdt-perf-analyze-result").first
    result.wait_for(state="visible", timeout=30_000)
    assert "EXPLAIN ANALYZE" in result.inner_text()
    assert "actual" in result.inner_text()
