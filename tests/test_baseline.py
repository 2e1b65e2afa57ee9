"""Across requests: each panel's baseline is the previous stored request of the same view and
method; any other stored request can be chosen through the signed ``perf_compare`` endpoint."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from debug_toolbar_perf import baseline
from shop.models import Category, Product, Review
from tests.conftest import assert_valid_html, run_with_toolbar

PANELS = ("ModelInstancesPanel", "ExplainPanel")


def seed(products: int) -> None:
    category = Category.objects.create(name="c")
    for i in range(products):
        product = Product.objects.create(name=f"p{i}", category=category, price=1)
        Review.objects.create(product=product, rating=3, text="t")


def compare_url(html: str) -> str:
    import re
    from html import unescape

    match = re.search(r'data-perf-compare-url="([^"]+)"', html)
    assert match, "no baseline choice in the panel"
    return unescape(match.group(1))


@pytest.mark.django_db
def test_previous_request_of_the_same_view_is_the_baseline(client: Client) -> None:
    seed(6)
    first = run_with_toolbar(client, "/products/n-plus-one/")
    other = run_with_toolbar(client, "/products/fixed/")
    second = run_with_toolbar(client, "/products/n-plus-one/")
    post = run_with_toolbar(client, "/products/n-plus-one/", "post")
    for panel in PANELS:
        assert first.stats(panel)["baseline"] is None
        assert other.stats(panel)["baseline"] is None  # another view
        ref = second.stats(panel)["baseline"]
        assert ref["request_id"] == first.request_id
        assert (ref["method"], ref["path"]) == ("GET", "/products/n-plus-one/")
        assert len(json.dumps(ref)) <= 120  # what a baseline adds to a panel's stored stats
        assert post.stats(panel).get("baseline") is None  # same view, other method


@pytest.mark.django_db
def test_the_baseline_just_stored_is_read_without_the_store(client: Client) -> None:
    """The next request compares with the record this process just stored, held in memory:
    the very object the live panel recorded, equal to what the store gives back."""
    seed(6)
    first = run_with_toolbar(client, "/products/n-plus-one/")
    for panel in ("SamplingProfilerPanel", "LineMemoryPanel", *PANELS):
        held, why = baseline.baseline_record(first.request_id, panel)
        assert why is None
        assert held is first.live_panel(panel).get_stats()["record"]
        assert held == first.stats(panel)["record"]


@pytest.mark.django_db
def test_unchanged_reload_is_no_significant_change(client: Client) -> None:
    seed(6)
    first = run_with_toolbar(client, "/products/n-plus-one/")
    second = run_with_toolbar(client, "/products/n-plus-one/")
    for panel in PANELS:
        assert second.subtitle(panel) == first.subtitle(panel)  # no Δ in the subtitle
        html = second.content(panel)
        assert 'data-significant="0"' in html and "No significant change." in html
        assert "the previous request of this view" in html


@pytest.mark.django_db
def test_an_evicted_baseline_is_said_not_shown(client: Client) -> None:
    from debug_toolbar.store import get_store

    seed(6)
    first = run_with_toolbar(client, "/products/n-plus-one/")
    second = run_with_toolbar(client, "/products/n-plus-one/")
    get_store().delete(first.request_id)
    html = second.content("ExplainPanel")
    assert "no longer in the toolbar&#x27;s store" in html
    found = baseline.previous("ExplainPanel", second.request_id, "shop.views.n_plus_one", "GET")
    assert found is None


@pytest.mark.django_db
def test_any_stored_request_can_be_the_baseline(client: Client) -> None:
    seed(12)
    n_plus_one = run_with_toolbar(client, "/products/n-plus-one/")
    fixed = run_with_toolbar(client, "/products/fixed/")
    html = fixed.content("ExplainPanel")
    assert "no earlier request of this view" in html
    url = compare_url(html)
    response = client.get(f"{url}&baseline={n_plus_one.request_id}")
    assert response.status_code == 200
    content = response.json()["content"]
    assert_valid_html(content)
    assert "N+1 on shop.Category fixed: \u221212 queries" in content
    assert "GET <code>/products/n-plus-one/</code>" in content


@pytest.mark.django_db
def test_compare_endpoint_checks_its_input(client: Client) -> None:
    seed(2)
    run = run_with_toolbar(client, "/products/n-plus-one/")
    run_with_toolbar(client, "/products/fixed/")
    url = compare_url(run.content("ExplainPanel"))
    assert client.get(f"{url}&baseline=../../etc/passwd").status_code == 400
    base, _ = url.split("?")
    assert client.get(base, {"signed": "forged", "baseline": run.request_id}).status_code == 400
    gone: Any = client.get(f"{url}&baseline={'0' * 32}")
    assert gone.status_code == 200
    assert "no longer in the toolbar" in gone.json()["content"]


@pytest.mark.django_db
def test_nothing_stored_to_compare_with_leaves_the_panel_as_it_was(client: Client) -> None:
    seed(2)
    first = run_with_toolbar(client, "/products/n-plus-one/")
    for panel in PANELS:
        assert "djdt-perf-compare" not in first.content(panel)
    run_with_toolbar(client, "/products/fixed/")
    assert "data-perf-compare-url" in first.content("ExplainPanel")  # now one to pick


@pytest.mark.django_db
@pytest.mark.parametrize(
    "store", ["debug_toolbar.store.MemoryStore", "debug_toolbar.store.CacheStore"]
)
def test_a_new_process_finds_the_baseline_in_the_store(
    client: Client, settings: Any, store: str
) -> None:
    """runserver's autoreloader starts a new process on each code change: its index is empty,
    and the baseline is found again from what the store holds (a store that outlives the
    process; the in-memory index is forgotten here as a new process would not have it)."""
    from debug_toolbar.store import get_store

    settings.DEBUG_TOOLBAR_CONFIG = {**settings.DEBUG_TOOLBAR_CONFIG, "TOOLBAR_STORE_CLASS": store}
    get_store().clear()
    seed(6)
    first = run_with_toolbar(client, "/products/n-plus-one/")
    ref = first.stats("ExplainPanel")["request"]
    assert ref["method"] == "GET" and ref["path"] == "/products/n-plus-one/"
    assert len(json.dumps(ref)) <= 70
    baseline.clear()  # the new process
    second = run_with_toolbar(client, "/products/n-plus-one/")
    for panel in PANELS:
        assert second.stats(panel)["baseline"]["request_id"] == first.request_id
    assert "No significant change." in second.content("ExplainPanel")
    get_store().clear()


def test_the_index_stays_bounded_and_finds_by_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_ENTRIES the oldest entries leave the index and its by-id map together; the
    previous request of a view is the newest stored one before it, whatever lies between."""
    stored: set[str] = set()
    monkeypatch.setattr(baseline, "_stored_ids", lambda: stored)
    monkeypatch.setattr(baseline, "_primed", {"P"})  # no store to read back
    n = baseline.MAX_ENTRIES + 30
    for i in range(n):
        label = "home" if i % 3 == 0 else "list"
        baseline.remember("P", f"r{i}", label, "GET", "/")
        stored.add(f"r{i}")
    assert baseline.entry("P", "r0") is None and baseline.entry("P", "r29") is None
    assert baseline.entry("P", "r30") is not None
    last = f"r{n - 1}"
    assert baseline.entry("P", last) is not None and len(baseline._by_id["P"]) == 200
    home = [i for i in range(n) if i % 3 == 0]
    ref = baseline.previous("P", f"r{home[-1]}", "home", "GET")
    assert ref is not None and ref["request_id"] == f"r{home[-2]}"
    stored.discard(f"r{home[-2]}")  # the toolbar's store dropped it: the one before
    ref = baseline.previous("P", f"r{home[-1]}", "home", "GET")
    assert ref is not None and ref["request_id"] == f"r{home[-3]}"
    assert [e.request_id for e in baseline.same_view("P", "home", "GET")][:2] == [
        f"r{home[-1]}",
        f"r{home[-3]}",
    ]
    assert baseline.previous("P", "unknown", "list", "GET")["request_id"] == last  # type: ignore[index]
