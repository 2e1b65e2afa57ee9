"""The line-memory panel is off by default where it costs (3.10/3.11) and the user's tick wins."""

from __future__ import annotations

import sys

import pytest
from django.test import Client, override_settings

from tests.conftest import run_with_toolbar

pytestmark = pytest.mark.real_panel_defaults
PANEL = "LineMemoryPanel"


def line_memory_enabled(client: Client, perf: dict) -> bool:
    with override_settings(DEBUG_TOOLBAR_PERF=perf):
        run = run_with_toolbar(client, "/t/plain/")
        enabled = run.live_panel(PANEL).enabled
    # A disabled panel did not run: nothing of it is in the store.
    assert bool(run.stats(PANEL)) is enabled
    return enabled


def test_default_follows_the_interpreter(client: Client) -> None:
    assert line_memory_enabled(client, {}) is (sys.version_info >= (3, 12))


@pytest.mark.parametrize("value", [True, False])
def test_setting_decides(client: Client, value: bool) -> None:
    assert line_memory_enabled(client, {"LINE_MEMORY": {"ENABLED_BY_DEFAULT": value}}) is value


@pytest.mark.parametrize(("cookie", "expected"), [("on", True), ("off", False)])
def test_the_toolbar_tick_wins(client: Client, cookie: str, expected: bool) -> None:
    client.cookies[f"djdt{PANEL}"] = cookie
    perf = {"LINE_MEMORY": {"ENABLED_BY_DEFAULT": not expected}}
    assert line_memory_enabled(client, perf) is expected


def test_other_panels_stay_on(client: Client) -> None:
    with override_settings(DEBUG_TOOLBAR_PERF={}):
        run = run_with_toolbar(client, "/t/plain/")
        for panel_id in ("SamplingProfilerPanel", "ModelInstancesPanel", "ExplainPanel"):
            assert run.live_panel(panel_id).enabled
