"""The sampling profiler panel as a person sees it on the demo's CPU page."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import open_panel, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_flame_graph_shows_the_hot_function(
    page: Any, live_server: Any, transactional_db: Any
) -> None:
    page.goto(live_server.url + "/cpu/?n=7000")
    panel = open_panel(page, "SamplingProfilerPanel")
    flame = panel.locator(".djdt-perf-flame-canvas")
    flame.locator(".djdt-perf-frame").first.wait_for(state="visible")
    assert panel.locator(".djdt-perf-frame", has_text="slow_primes").count() >= 1
    hot = panel.locator("table.djdt-perf-table").first
    assert "slow_primes" in hot.inner_text()
    screenshot(page, "sampling-cpu")

    # Search highlights the matching frames and dims the others.
    panel.locator(".djdt-perf-flame-search").fill("slow_primes")
    assert panel.locator(".djdt-perf-frame-match").count() >= 1
    assert panel.locator(".djdt-perf-frame-dim").count() >= 1

    # Clicking a frame zooms into it: it then spans the whole width.
    frame = panel.locator(".djdt-perf-frame", has_text="slow_primes").first
    frame.click()
    width = frame.evaluate("el => el.getBoundingClientRect().width")
    full = flame.evaluate("el => el.getBoundingClientRect().width")
    assert width > 0.9 * full
