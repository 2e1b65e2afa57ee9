"""The instances Δ: per model and per site, findings fixed or new, on the demo's N+1 page."""

from __future__ import annotations

import pytest
from django.test import Client

from debug_toolbar_perf.instances.diff import diff
from shop.models import Category, Product, Review
from tests.conftest import run_with_toolbar

PANEL = "ModelInstancesPanel"


def seed(products: int, category: Category | None = None) -> Category:
    category = category or Category.objects.create(name="c")
    for i in range(products):
        product = Product.objects.create(name=f"p{i}", category=category, price=1)
        Review.objects.create(product=product, rating=3, text="t")
    return category


@pytest.mark.django_db
def test_reload_after_the_data_grew_shows_the_delta(client: Client) -> None:
    category = seed(6)
    run_with_toolbar(client, "/products/n-plus-one/")
    seed(3, category)
    second = run_with_toolbar(client, "/products/n-plus-one/")
    subtitle = second.subtitle(PANEL)
    assert subtitle.endswith("· \u0394 +6 instances")  # 3 products, 3 categories
    html = second.content(PANEL)
    assert "shop.Category: 6 \u2192 9" in html and "shop.Product: 6 \u2192 9" in html
    assert 'data-significant="1"' in html


@pytest.mark.django_db
def test_n_plus_one_page_against_its_fixed_twin(client: Client) -> None:
    seed(12)
    broken = run_with_toolbar(client, "/products/n-plus-one/").record(PANEL)
    fixed = run_with_toolbar(client, "/products/fixed/").record(PANEL)
    made = diff(fixed, broken)
    assert made.significant
    assert made.notes[0] == "N+1 on shop.Category fixed: \u221212 queries"  # the site's queries
    # select_related builds the 12 categories too, but from another line: the site moved
    category = next(n for n in made.notes if n.startswith("shop.Category: 12 \u2192 12"))
    assert "gone" in category and "new site" in category
    back = diff(broken, fixed)
    assert "new N+1 on shop.Category" in back.notes


@pytest.mark.django_db
def test_same_record_is_no_change(client: Client) -> None:
    seed(3)
    record = run_with_toolbar(client, "/products/n-plus-one/").record(PANEL)
    made = diff(record, record)
    assert not made.significant and not made.rows and not made.notes


@pytest.mark.django_db
def test_an_edit_above_the_sites_is_no_change(client: Client) -> None:
    """Three lines inserted above the view move every site's line number, not the sites."""
    import copy

    seed(3)
    record = run_with_toolbar(client, "/products/n-plus-one/").record(PANEL)
    moved = copy.deepcopy(record)
    for model in moved["models"]:
        for site in model["sites"]:
            site["where"]["line"] += 3
    made = diff(moved, record)
    assert not made.significant and not made.notes and not made.rows
