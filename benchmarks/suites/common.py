"""Shared pieces: a toolbar client and panel-list variants."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from django.conf import settings
from django.test import Client, override_settings

from ..harness import Variant

PERF = "debug_toolbar_perf.panels."
BASE_PANELS = [
    p for p in settings.DEBUG_TOOLBAR_PANELS if not p.startswith(PERF) and "profiling" not in p
]
ALL_OURS = [
    PERF + n
    for n in ("SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel")
]


def panels(
    *extra: str, perf: dict[str, Any] | None = None, **more: Any
) -> Callable[[], AbstractContextManager[Any]]:
    def setup() -> AbstractContextManager[Any]:
        return override_settings(
            DEBUG_TOOLBAR_PANELS=[*BASE_PANELS, *extra],
            DEBUG_TOOLBAR_CONFIG={**settings.DEBUG_TOOLBAR_CONFIG, "DISABLE_PANELS": set()},
            # Measure the line-memory panel where it is listed, even where it is off by default.
            DEBUG_TOOLBAR_PERF={
                **(perf or {}),
                "LINE_MEMORY": {
                    "ENABLED_BY_DEFAULT": True,
                    **(perf or {}).get("LINE_MEMORY", {}),
                },
            },
            **more,
        )

    return setup


def baseline() -> Variant:
    return Variant("toolbar on, our panels off", panels(), baseline=True)


def getter(path: str) -> Callable[[], None]:
    client = Client()

    def run() -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}")

    return run
