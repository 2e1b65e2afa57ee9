"""All four panels on together vs the toolbar alone, on the demo's pages."""

from __future__ import annotations

from ..harness import Result, Variant, measure
from .common import ALL_OURS, baseline, getter, panels

PAGES = [
    ("categories (a few ms)", "/categories/"),
    ("N+1 products", "/products/n-plus-one/"),
    ("truthy QuerySet", "/reviews/summary/"),
    ("CPU page (n=3000)", "/cpu/?n=3000"),
    ("memory page", "/memory/"),
]


def run(quick: bool) -> list[Result]:
    results: list[Result] = []
    rounds = 3 if quick else 15
    pages = PAGES[:2] if quick else PAGES
    for label, path in pages:
        rows = measure(
            "All four panels vs the toolbar alone",
            label,
            getter(path),
            [baseline(), Variant("all four perf panels", panels(*ALL_OURS))],
            rounds=rounds,
        )
        for r in rows:
            r.extra["ours"] = not r.baseline
        results += rows
    return results
