"""Helpers of the reliability tests: our URLconf, the panel lists with and without ours."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.test import override_settings
from django.urls import clear_url_caches

PERF_PANELS = {
    "SamplingProfilerPanel",
    "LineMemoryPanel",
    "ModelInstancesPanel",
    "ExplainPanel",
}
URLCONF = "tests.reliability.urls"


def panels_without_ours() -> list[str]:
    return [p for p in settings.DEBUG_TOOLBAR_PANELS if not p.startswith("debug_toolbar_perf.")]


@receiver(setting_changed)
def _rebuild_our_urls(*, setting: str, **kwargs: Any) -> None:
    if setting not in ("DEBUG_TOOLBAR_PANELS", "DEBUG"):
        return
    from debug_toolbar.settings import get_panels
    from debug_toolbar.toolbar import DebugToolbar

    get_panels.cache_clear()
    DebugToolbar._panel_classes = None
    DebugToolbar._urlpatterns = None
    import tests.reliability.urls

    importlib.reload(tests.reliability.urls)
    clear_url_caches()


@pytest.fixture
def our_urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF=URLCONF):
        import tests.reliability.urls

        importlib.reload(tests.reliability.urls)
        yield


@pytest.fixture
def without_our_panels() -> Any:
    """A context manager: the same toolbar, our four panels removed."""
    return lambda: override_settings(DEBUG_TOOLBAR_PANELS=panels_without_ours())
