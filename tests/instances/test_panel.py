"""ModelInstancesPanel through the real toolbar and its JSON store."""

from __future__ import annotations

import gc
import json
import threading
import urllib.request
from typing import Any

import pytest
from django.db.models.signals import post_init
from django.test import override_settings

from debug_toolbar_perf.availability import module_installed
from debug_toolbar_perf.instances import hook as engine_hook
from debug_toolbar_perf.instances import sizes as engine_sizes
from shop.models import Category, Product, Review

PANEL = "ModelInstancesPanel"
needs_pympler = pytest.mark.skipif(
    not module_installed("pympler"), reason="Pympler not installed in this interpreter"
)


def seed(reviews: int, products: int = 1) -> None:
    cat = Category.objects.create(name="c")
    prods = [Product.objects.create(name=f"p{i}", category=cat, price=1) for i in range(products)]
    Review.objects.bulk_create(
        [Review(product=prods[i % products], rating=3, text="t") for i in range(reviews)]
    )


def model(record: dict[str, Any], label: str) -> dict[str, Any]:
    return next(m for m in record["models"] if m["label"] == label)


@pytest.mark.django_db
def test_truthy_page_counts_every_review_and_names_the_line(toolbar_client):
    seed(300)
    run = toolbar_client("/reviews/summary/")
    assert run.response.status_code == 200
    record = run.record(PANEL)
    reviews = model(record, "shop.Review")
    # if self.queryset: builds all 300, then .first() builds one more
    assert reviews["count"] == Review.objects.count() + 1
    top = reviews["sites"][0]
    assert top["count"] == Review.objects.count()
    assert top["where"]["function"] == "get_first_review"
    assert (
        top["where"]["code"]
        == "if self.queryset:  # evaluates the whole QuerySet: builds every Review"
    )
    assert top["where"]["file"].endswith("shop/views.py")
    assert top["called"] == "__bool__"
    html = run.content(PANEL)
    assert "get_first_review" in html and "if self.queryset:" in html
    assert f">{Review.objects.count() + 1}<" in html.replace(",", "")
    assert "shop.Review" in run.subtitle(PANEL)
    assert run.subtitle(PANEL) == f"{record['total']:,} instances · shop.Review 301"


@pytest.mark.django_db
@override_settings(DEBUG_TOOLBAR_PERF={"INSTANCES": {"THRESHOLD": 100}})
def test_truthy_page_finding_and_fixed_twin(toolbar_client):
    seed(300)
    record = toolbar_client("/reviews/summary/").record(PANEL)
    kinds = {(f["kind"], f["model"]) for f in _findings(record)}
    assert ("evaluation", "shop.Review") in kinds and ("count", "shop.Review") in kinds
    fixed = toolbar_client("/reviews/summary/fixed/").record(PANEL)
    assert model(fixed, "shop.Review")["count"] == 1
    assert not _findings(fixed)


def _findings(record: dict[str, Any]) -> list[dict[str, Any]]:
    from debug_toolbar_perf.instances.report import findings

    return findings(record)


@pytest.mark.django_db
def test_n_plus_one_linked_to_sql_queries(toolbar_client):
    seed(10, products=12)
    run = toolbar_client("/products/n-plus-one/")
    record = run.record(PANEL)
    assert record["sql"]["present"]
    cats = model(record, "shop.Category")
    assert cats["count"] == 12
    site = cats["sites"][0]
    assert site["query_count"] == 12
    assert site["related"] == {"kind": "select_related", "field": "category"}
    found = [f for f in _findings(record) if f["kind"] == "n_plus_one"]
    assert found and "select_related('category')" in found[0]["fix"]
    html = run.content(PANEL)
    assert "N+1" in html and "SELECT" in html
    fixed = toolbar_client("/products/fixed/").record(PANEL)
    assert model(fixed, "shop.Category")["count"] == 12
    assert not [f for f in _findings(fixed) if f["kind"] == "n_plus_one"]


@pytest.mark.django_db
@override_settings(
    DEBUG_TOOLBAR_PANELS=[
        "debug_toolbar_perf.panels.ModelInstancesPanel",
        "debug_toolbar.panels.sql.SQLPanel",
    ]
)
def test_sql_link_with_sql_panel_after_ours(toolbar_client):

    seed(10, products=6)
    run = toolbar_client("/products/n-plus-one/")
    assert [p.panel_id for p in run.toolbar.enabled_panels] == [PANEL, "SQLPanel"]
    record = run.record(PANEL)
    assert model(record, "shop.Category")["sites"][0]["query_count"] == 6
    assert record["sql"]["total"] >= 7


@pytest.mark.django_db
@override_settings(DEBUG_TOOLBAR_PANELS=["debug_toolbar_perf.panels.ModelInstancesPanel"])
def test_without_sql_panel(toolbar_client):

    seed(20)
    run = toolbar_client("/reviews/summary/")
    assert [p.panel_id for p in run.toolbar.enabled_panels] == [PANEL]
    record = run.record(PANEL)
    assert record["sql"]["present"] is False
    assert model(record, "shop.Review")["count"] == 21


@needs_pympler
@pytest.mark.django_db
@override_settings(DEBUG_TOOLBAR_PERF={"INSTANCES": {"FULL_GC": True}})
def test_sizes_and_alive_after_response(toolbar_client):
    seed(80)
    record = toolbar_client("/reviews/summary/").record(PANEL)
    reviews = model(record, "shop.Review")
    assert reviews["size"]["sampled"] == 50  # held for sizing; alike, so 10 were measured
    assert reviews["size"]["samples"] == engine_sizes.MIN_SIZE_SAMPLES
    assert 200 < reviews["size"]["mean"] < 20_000
    assert reviews["size"]["estimated_total"] == pytest.approx(reviews["size"]["mean"] * 81)
    # the template response keeps the one review of .first() alive; the 80 are freed
    assert reviews["alive_tracked"] == 81
    assert reviews["alive"] <= 1


@pytest.mark.django_db
def test_pympler_missing_counts_still_work(toolbar_client, monkeypatch):
    from debug_toolbar_perf import availability

    monkeypatch.setattr(availability, "module_installed", lambda name: name != "pympler")
    seed(30)
    run = toolbar_client("/reviews/summary/")
    record = run.record(PANEL)
    assert model(record, "shop.Review")["count"] == 31
    assert model(record, "shop.Review")["size"] is None
    assert record["pympler"] is False
    html = run.content(PANEL)
    assert "Sizes need Pympler" in html and "pip install" in html


ONLY_OURS = [
    "debug_toolbar.panels.sql.SQLPanel",
    "debug_toolbar_perf.panels.ModelInstancesPanel",
]


@pytest.mark.slow
@pytest.mark.django_db
def test_thousand_requests_do_not_accumulate(toolbar_client, settings):
    """The hook is installed once and nothing grows across 1,000 requests: no stacked
    wrappers, no extra receivers, no objects left behind beyond the toolbar's bounded store.
    (Request time, 1st vs 1,000th, is measured in the benchmark, not asserted here.)"""

    settings.DEBUG_TOOLBAR_PANELS = [
        "debug_toolbar.panels.sql.SQLPanel",
        "debug_toolbar_perf.panels.ModelInstancesPanel",
    ]
    seed(1000)
    receivers_before = len(post_init.receivers)

    def request() -> None:
        run = toolbar_client("/reviews/summary/")
        assert model(run.record(PANEL), "shop.Review")["count"] == 1001

    # Warm up past the toolbar's RESULTS_CACHE_SIZE and past the 512 entries of Django's
    # lru_cache in django.utils.inspect, which the test client fills with one partial per
    # request (each holding that request's templates, context and toolbar): both are bounded.
    for _ in range(600):
        request()
    gc.collect()
    objects_before = len(gc.get_objects())
    for _ in range(400):
        request()
    gc.collect()
    growth = len(gc.get_objects()) - objects_before
    assert engine_hook.installed()
    assert len(post_init.receivers) == receivers_before
    assert engine_hook._orig_send.__self__ is post_init  # one layer over Django's send
    assert growth < 5_000, f"{growth} more live objects after 400 more requests"


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_count_only_their_own(live_server, settings):
    """Two requests on two server threads at once: each panel counts its own rows."""
    from debug_toolbar.toolbar import DebugToolbar

    seed(3000)
    settings.DEBUG = True
    created: list[Any] = []

    def grab(sender: Any, toolbar: Any, **_: Any) -> None:
        created.append(toolbar)

    DebugToolbar._created.connect(grab)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def fetch(path: str) -> None:
        try:
            barrier.wait(5)
            with urllib.request.urlopen(live_server.url + path, timeout=60) as r:
                r.read()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=fetch, args=(p,))
        for p in ("/reviews/summary/", "/reviews/summary/fixed/")
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        DebugToolbar._created.disconnect(grab)
    assert not errors, errors
    counts = {}
    for tb in created:
        stats = tb.get_panel_by_id(PANEL).get_stats()
        counts[tb.request.path] = model(stats["record"], "shop.Review")["count"]
    assert counts == {"/reviews/summary/": 3001, "/reviews/summary/fixed/": 1}


@needs_pympler
@pytest.mark.django_db
def test_heap_summary_endpoint_signed_and_lazy_safe(toolbar_client, client):
    from django.utils.functional import SimpleLazyObject

    def explode() -> Any:
        raise RuntimeError("lazy object evaluated")

    lazy = SimpleLazyObject(explode)
    seed(5)
    run = toolbar_client("/reviews/summary/")
    html = run.content(PANEL)
    panel = run.stored_panel(PANEL)
    url = panel.heap_summary_url()
    assert url and url.replace("&", "&amp;") in html
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    data = json.loads(response.content)
    assert data["rows"] and data["lazy_skipped"] >= 1
    assert object.__getattribute__(lazy, "_wrapped") is not None  # still unevaluated
    bad = client.get(url.split("?")[0] + "?signed=forged")
    assert bad.status_code == 400


@pytest.mark.django_db
def test_heap_summary_without_pympler_says_what_to_install(toolbar_client, client, monkeypatch):
    from debug_toolbar_perf import availability

    run = toolbar_client("/reviews/summary/fixed/")
    url = run.stored_panel(PANEL).heap_summary_url()
    monkeypatch.setattr(availability, "module_installed", lambda name: name != "pympler")
    response = client.get(url)
    assert response.status_code == 501
    assert "pip install" in json.loads(response.content)["fix"]


@pytest.mark.django_db
@override_settings(DEBUG_TOOLBAR_PERF={"INSTANCES": {"FULL_GC": True}})
def test_full_gc_tells_cyclic_garbage_from_survivors(toolbar_client):
    """The truthy view keeps its QuerySet in a cycle (View.setup sets self.head = self.get);
    after a full collection only the review the template response holds is alive."""
    seed(3000)
    run = toolbar_client("/reviews/summary/")
    reviews = model(run.record(PANEL), "shop.Review")
    assert reviews["alive_tracked"] == 100  # INSTANCES.ALIVE_SAMPLE
    assert reviews["alive"] <= 1
    assert "after a full garbage collection" in run.content(PANEL)
