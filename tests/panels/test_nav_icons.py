"""Each perf panel has an icon in the toolbar's sidebar, as the built-in panels do."""

from __future__ import annotations

import re

import pytest
from debug_toolbar.panels import Panel
from django.contrib.staticfiles import finders
from django.test import Client

PANELS = ["SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel"]


@pytest.mark.skipif(not hasattr(Panel, "nav_icon"), reason="this toolbar shows no panel icons")
def test_every_perf_panel_button_has_an_icon(client: Client) -> None:
    html = client.get("/t/plain/").content.decode()
    for panel in PANELS:
        button = re.search(rf'<li id="djdt-{panel}".*?</li>', html, re.S)
        assert button, f"{panel} is not in the toolbar"
        assert '<svg class="djdt-nav-icon"' in button.group(0), f"{panel} has no icon"
    # The built-in panels' icons for comparison: the same markup.
    assert '<svg class="djdt-nav-icon"' in re.search(
        r'<li id="djdt-HeadersPanel".*?</li>', html, re.S
    ).group(0)  # type: ignore[union-attr]


def test_icons_are_16px_svgs_like_the_toolbar_s() -> None:
    for name in ("sampling", "line_memory", "instances", "explain"):
        path = finders.find(f"debug_toolbar_perf/img/{name}.svg")
        assert path, name
        with open(path) as fh:
            svg = fh.read()
        assert svg.startswith('<svg width="16" height="16" viewBox="0 0 16 16"'), name
        assert 'stroke="white"' in svg and "<script" not in svg
