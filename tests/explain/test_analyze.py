"""EXPLAIN ANALYZE on demand never changes data, on every engine, allowed or not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from debug_toolbar_perf.conf import get_config
from debug_toolbar_perf.explain.analyze import run_analyze
from debug_toolbar_perf.explain.findings import plan_findings
from shop.models import Category, Product
from tests.explain.seed import alias_params, seed_all, stored_shapes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def seeded(django_db_setup: Any, django_db_blocker: Any) -> Iterator[list[str]]:
    yield from seed_all(django_db_blocker)


@pytest.mark.parametrize("alias", alias_params())
@pytest.mark.django_db(databases="__all__")
def test_analyze_select_shows_actual_rows(seeded: list[str], alias: str) -> None:
    (shape,) = stored_shapes(
        alias, lambda: list(Product.objects.using(alias).filter(published=True)[:5])
    )
    result = run_analyze(shape, allow_writes=False, timeout_ms=5000)
    nodes = _nodes(result["plan"])
    assert any(n["actual_rows"] is not None for n in nodes)


@pytest.mark.parametrize("alias", [p for p in alias_params() if p.id != "sqlite"])
@pytest.mark.django_db(databases="__all__")
def test_analyze_finds_rows_discarded_by_a_filter(seeded: list[str], alias: str) -> None:
    cat = _cat(alias)

    def run() -> None:
        list(Product.objects.using(alias).filter(category_id=cat, popularity__lt=1000))

    (shape,) = stored_shapes(alias, run)
    result = run_analyze(shape, allow_writes=False, timeout_ms=5000)
    found = plan_findings(shape, get_config()["EXPLAIN"], plan=result["plan"])
    removed = [f for f in found if f["code"] == "rows_removed"]
    assert removed, result["plan"]
    assert removed[0]["evidence"]["removed"] > 4000  # ~5,000 rows of the category read
    assert removed[0]["evidence"]["kept"] < 100
    node = next(n for n in _nodes(result["plan"]) if n["id"] == removed[0]["node"])
    assert node["relation"] == "shop_product"


def _cat(alias: str) -> int:
    return Category.objects.using(alias).order_by("pk").values_list("pk", flat=True)[3]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for c in plan.get("children") or []:
        out.extend(_nodes(c))
    return out
