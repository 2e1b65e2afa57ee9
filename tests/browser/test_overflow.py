"""No perf panel is wider than the toolbar's panel at 1280 px, on any demo page.

Tables used to be up to 1,834 px wide in a 1,040 px panel (the Where column held full paths
like ``.../.venv/lib/python3.11/site-packages/django/...``), cutting off Self and Total.
Screenshots of every page and panel go to PERF_OVERFLOW_SHOTS when it is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import open_panel

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTH = 1280
PANELS = ["SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel"]
#: Smaller inputs than the defaults where a page would take seconds (the layout is the same).
QUERY = {"cpu": "?n=3000"}


def demo_pages() -> list[str]:
    from shop.views import PAGES

    return [name for name, _label, _help in PAGES]


#: The panel's scroll box's overflow, and the innermost elements that stick out of it.
MEASURE = """async (panel) => {
    // Measure with the panel's stylesheets applied (they load after the content is inserted).
    await Promise.all([...panel.querySelectorAll('link[rel=stylesheet]')].map((link) =>
        link.sheet ? null : new Promise((done) => {
            link.addEventListener('load', done);
            link.addEventListener('error', done);
        })));
    const box = panel.querySelector('.djdt-scroll') || panel;
    const right = box.getBoundingClientRect().right + 1;
    const out = (el) => el.getBoundingClientRect().right > right;
    const culprits = [];
    for (const el of box.querySelectorAll('*')) {
        if (el.getBoundingClientRect().width && out(el) && ![...el.children].some(out)) {
            const rect = el.getBoundingClientRect();
            culprits.push(`<${el.tagName.toLowerCase()} class="${el.className}"> ` +
                `${Math.round(rect.width)} px: ${el.textContent.trim().slice(0, 60)}`);
        }
    }
    return {limit: box.clientWidth, width: box.scrollWidth, culprits: culprits.slice(0, 5)};
}"""


@pytest.mark.parametrize("name", demo_pages())
def test_no_panel_is_wider_than_the_toolbar(
    name: str, page: Any, live_server: Any, seeded_demo: None
) -> None:
    from django.urls import reverse

    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.goto(live_server.url + reverse(name) + QUERY.get(name, ""))
    shots = os.environ.get("PERF_OVERFLOW_SHOTS")
    problems = []
    for panel_id in PANELS:
        panel = open_panel(page, panel_id)
        result = panel.evaluate(MEASURE)
        assert result["limit"] > 800, result  # the panel really is open at this width
        if result["width"] > result["limit"] + 1:
            problems.append(
                f"{panel_id}: {result['width']} px in a {result['limit']} px panel; "
                + "; ".join(result["culprits"])
            )
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(shots) / f"{name}-{panel_id}.png"))
        page.locator(f"#{panel_id} .djDebugClose").first.click()
    assert not problems, f"{name}: wider than the panel:\n" + "\n".join(problems)
