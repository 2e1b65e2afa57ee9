"""HTML and JavaScript in code, names and SQL are shown as text in every perf panel, never run."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import open_panel

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PANELS = ("SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel")


def test_every_perf_panel_shows_hostile_text_as_text(
    page: Any, live_server: Any, seeded_demo: None
) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(live_server.url + "/xss/")
    texts = {}
    for panel_id in PANELS:
        panel = open_panel(page, panel_id)
        page.wait_for_timeout(300)  # let the panel's module render (flame graph, tables)
        texts[panel_id] = panel.inner_text()
        page.locator(f"#{panel_id} .djDebugClose").first.click()
    assert dialogs == [], dialogs
    assert "</script><script>alert('sql')</script>" in texts["ExplainPanel"]
    assert "</script><script>alert('line')</script>" in texts["LineMemoryPanel"]
    assert "</script><script>alert('xss')</script>" in texts["LineMemoryPanel"]
    # No element was created from the hostile strings anywhere in the toolbar's shadow DOM
    # (json_script data blocks hold them escaped, as \u003C, and never run).
    injected = page.evaluate(
        """() => {
            const root = document.querySelector('#djDebugRoot')?.shadowRoot || document;
            return [...root.querySelectorAll('script, img[src="x"]')]
                .filter(e => e.tagName === 'IMG'
                    || (e.type !== 'application/json' && /alert/.test(e.textContent)))
                .map(e => e.outerHTML.slice(0, 300));
        }"""
    )
    assert injected == [], injected
