"""Off means off: a request with the toolbar hidden costs what it costs without this package.

Baseline: our panels not configured and the instance-counting hook removed (as if the package
were not installed). Variant: all four panels configured, the hook installed, but the toolbar
hidden for the client (outside INTERNAL_IPS), which is how a project runs when the toolbar is
off. The truthy page builds every Review row, where an idle hook would cost most.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.test import override_settings

from debug_toolbar_perf.instances import hook as instances_hook

from ..harness import Result, Variant, measure
from .common import ALL_OURS, getter, panels

PAGES = [("categories (a few ms)", "/categories/"), ("truthy QuerySet", "/reviews/summary/")]


@contextmanager
def absent() -> Iterator[None]:
    with panels()(), override_settings(INTERNAL_IPS=[]):
        instances_hook.uninstall()
        try:
            yield
        finally:
            instances_hook.install()


@contextmanager
def hidden() -> Iterator[None]:
    with panels(*ALL_OURS)(), override_settings(INTERNAL_IPS=[]):
        instances_hook.install()
        yield


def run(quick: bool) -> list[Result]:
    results: list[Result] = []
    for label, path in PAGES[:1] if quick else PAGES:
        rows = measure(
            "Toolbar hidden: the package costs nothing",
            label,
            getter(path),
            [
                Variant(
                    "package absent (panels not configured, hook removed)", absent, baseline=True
                ),
                Variant("all four panels configured, toolbar hidden", hidden),
            ],
            rounds=5 if quick else 30,
        )
        for r in rows:
            if not r.baseline:
                r.goal = "≈ x1.00"
                r.extra["met"] = r.ratio <= 1.05
                r.extra["ours"] = True
        results += rows
    return results
