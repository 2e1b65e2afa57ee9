"""LineMemoryPanel in a real browser: the demo's allocating line is on top with its figure."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import open_panel, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_memory_page_shows_the_big_list_line_first(
    page: Any, live_server: Any, transactional_db: Any, theme: str
) -> None:
    page.goto(live_server.url + "/memory/")
    page.evaluate(
        """(theme) => {
            const root = document.getElementById('djDebugRoot');
            const dj = (root.shadowRoot || document).querySelector('#djDebug');
            dj.setAttribute('data-theme', theme);
        }""",
        theme,
    )
    panel = open_panel(page, "LineMemoryPanel")
    first = panel.locator("table.djdt-perf-lm-heaviest tbody tr").first
    assert "big_list = [0] * 6_000_000" in first.inner_text()
    # In Increment, or - if the browser driver's thread in this test process ran during that
    # line - in "Others ran" (flagged), never lost: one of the two holds the 46 MiB.
    figures = [
        float(m.group(1)) if (m := re.search(r"([-\d.]+) MiB", cell)) else 0.0
        for cell in first.locator("td").all_inner_texts()[:2]
    ]
    assert max(figures) == pytest.approx(6_000_000 * 8 / (1 << 20), rel=0.10)
    # The free is shown as a negative increment in the function's table.
    row = panel.locator("table.djdt-perf-lm-table tr", has_text="del big_list").first
    assert "-45.8 MiB" in row.inner_text() or "-45.7 MiB" in row.inner_text()
    assert panel.locator(".djdt-perf-error").count() == 0
    screenshot(page, f"line-memory-{theme}")
