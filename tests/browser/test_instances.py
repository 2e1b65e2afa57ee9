"""The model-instances panel on the demo's truthy-QuerySet page, as a person sees it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import open_panel, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_truthy_queryset_is_a_one_look_diagnosis(
    page: Any, live_server: Any, seeded_demo: None
) -> None:
    from shop.models import Review

    reviews = Review.objects.count()
    page.goto(live_server.url + "/reviews/summary/")
    panel = open_panel(page, "ModelInstancesPanel")
    text = panel.inner_text()
    assert "shop.Review" in text
    assert f"{reviews + 1:,}" in text  # every row, plus the one .first() builds again
    assert "if self.queryset:" in text
    assert "get_first_review" in text
    # The toolbar's sheet makes every <code> a block; in this panel they stay in the line.
    displays = panel.locator(".djdt-perf-instances code").evaluate_all(
        "els => els.map(e => getComputedStyle(e).display)"
    )
    assert len(displays) > 5 and set(displays) == {"inline"}, displays
    screenshot(page, "instances-truthy")


def test_fixed_twin_builds_one(page: Any, live_server: Any, seeded_demo: None) -> None:
    page.goto(live_server.url + "/reviews/summary/fixed/")
    panel = open_panel(page, "ModelInstancesPanel")
    assert "if self.queryset:" not in panel.inner_text()
