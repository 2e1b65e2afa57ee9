"""The EXPLAIN Δ: statements and shapes, findings fixed or new, on the demo's N+1 page."""

from __future__ import annotations

import pytest
from django.test import Client

from debug_toolbar_perf.conf import get_config
from debug_toolbar_perf.explain.diff import diff
from shop.models import Category, Product, Review
from tests.conftest import run_with_toolbar

PANEL = "ExplainPanel"


def seed(products: int) -> None:
    category = Category.objects.create(name="c")
    for i in range(products):
        product = Product.objects.create(name=f"p{i}", category=category, price=1)
        Review.objects.create(product=product, rating=3, text="t")


@pytest.mark.django_db
def test_fixed_twin_against_the_n_plus_one_page(client: Client) -> None:
    seed(12)
    broken = run_with_toolbar(client, "/products/n-plus-one/").record(PANEL)
    fixed = run_with_toolbar(client, "/products/fixed/").record(PANEL)
    made = diff(fixed, broken, get_config()["EXPLAIN"])
    assert made.significant
    assert "N+1 on shop.Category fixed: \u221212 queries" in made.notes
    assert "N+1 on shop.Review fixed: \u221212 queries" in made.notes
    assert made.headline == "\u221224 queries, \u22122 shapes"  # 1 + 12 + 12 in 3 shapes -> 1
    assert made.rows[0] == ["statements", "25", "1", "\u221224"]
    back = diff(broken, fixed, get_config()["EXPLAIN"])
    assert "new: N+1 on shop.Category" in back.notes


@pytest.mark.django_db
def test_reload_after_the_data_grew(client: Client) -> None:
    seed(6)
    run_with_toolbar(client, "/products/n-plus-one/")
    seed(2)
    second = run_with_toolbar(client, "/products/n-plus-one/")
    assert second.subtitle(PANEL).endswith("· \u0394 +4 queries")
    html = second.content(PANEL)
    assert "statements" in html and 'data-significant="1"' in html
