"""ExplainPanel through the real toolbar: demo pages, store round trip, the ANALYZE endpoint."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from debug_toolbar.forms import SignedDataForm
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from debug_toolbar_perf.endpoints import ONCE_MAX_AGE_S
from shop.models import Product
from tests.conftest import assert_valid_html, run_with_toolbar
from tests.explain.seed import seed, unseed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        unseed("default")
        seed("default")
    yield
    with django_db_blocker.unblock():
        unseed("default")


def findings(run: Any) -> list[dict[str, Any]]:
    from debug_toolbar_perf.conf import get_config
    from debug_toolbar_perf.explain.findings import analyse

    record = run.record("ExplainPanel")
    return [f for s in analyse(record, get_config()["EXPLAIN"]) for f in s["findings"]]


@pytest.mark.django_db
def test_unindexed_page_shows_full_scan_and_partial_index(
    demo_data: None, toolbar_client: Any
) -> None:
    run = toolbar_client("/products/published/")
    found = findings(run)
    assert [f["code"] for f in found] == ["full_scan"]
    assert found[0]["suggestion"] == (
        "CREATE INDEX shop_product_published_idx ON shop_product (id) WHERE published"
    )
    # The count reads all 100k rows; the first page (LIMIT 50, 2% match) stops after ~2,500.
    shapes = {s["sql"].split()[1]: s for s in run.record("ExplainPanel")["shapes"]}
    assert set(shapes) == {"COUNT(*)", '"shop_product"."id",'}
    assert shapes['"shop_product"."id",']["limit_matches"] == [501, 501]
    assert found[0]["title"] == "Full scan of shop_product (100,000 rows)"
    html = run.content("ExplainPanel")
    assert "CREATE INDEX shop_product_published_idx ON shop_product (id) WHERE published" in html
    assert 'data-finding="full_scan"' in html and "djdt-perf-plan-finding" in html
    assert run.subtitle("ExplainPanel") == "2 shapes explained · 1 finding"


@pytest.mark.django_db
def test_n_plus_one_page_names_the_line_and_the_fix(demo_data: None, toolbar_client: Any) -> None:
    run = toolbar_client("/products/n-plus-one/")
    n1 = [f for f in findings(run) if f["code"] == "n_plus_one"]
    assert len(n1) == 2
    orm = " ".join(f["orm"] for f in n1)
    assert 'select_related("category")' in orm and 'prefetch_related("reviews")' in orm
    for f in n1:
        line = f["evidence"]["line"]
        assert line["file"].endswith("demo/shop/views.py") and line["project"]
        assert "p.category.name" in line["code"]
        assert f["evidence"]["count"] == 50
    html = run.content("ExplainPanel")
    assert "demo/shop/views.py:" in html and "select_related(&quot;category&quot;)" in html

    fixed = toolbar_client("/products/fixed/")
    assert not [f for f in findings(fixed) if f["code"] == "n_plus_one"]


@pytest.mark.django_db
def test_panel_statements_are_invisible_to_sql_panel_and_query_counts(
    demo_data: None, client: Client
) -> None:
    from tests.conftest import run_with_toolbar

    with CaptureQueriesContext(connection) as seen:
        run = run_with_toolbar(client, "/products/n-plus-one/")
    record = run.record("ExplainPanel")
    assert record["explains"] == 3 and record["size_lookups"] >= 1
    sql_stats = run.stats("SQLPanel")
    logged = [q["sql"] for q in sql_stats["queries"]]
    assert len(logged) == 101  # 1 + 50 + 50, exactly the view's
    assert not any("EXPLAIN" in q.upper() or "djdt_perf" in q for q in logged)
    view_queries = [q["sql"] for q in seen.captured_queries]
    assert not any("EXPLAIN" in q.upper() or "djdt_perf" in q for q in view_queries)
    assert (
        sum(s["count"] for s in record["shapes"])
        == record["statements"] - record["other_statements"]
    )


@pytest.mark.django_db
def test_assert_num_queries_is_unchanged(
    demo_data: None, client: Client, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(2):
        response = client.get("/products/published/")
    assert response.status_code == 200 and b"djDebug" in response.content


def _analyze_url_and_signed(html: str) -> tuple[str, str]:
    m = re.search(r'data-signed="([^"]+)" data-url="([^"]+)"', html)
    assert m, "no ANALYZE button"
    return m.group(2), m.group(1).replace("&quot;", '"').replace("&#x27;", "'")


def _csrf_post(client: Client, url: str, signed: str) -> Any:
    """What the button does: a CSRF token from the toolbar's endpoint (which sets the
    cookie), sent in the header the button names."""
    token = client.get(reverse("djdt:perf_csrf")).json()["token"]
    return client.post(url, {"signed": signed}, HTTP_X_CSRFTOKEN=token)


@pytest.mark.django_db
def test_analyze_endpoint_runs_the_stored_statement_once(demo_data: None) -> None:
    client = Client(enforce_csrf_checks=True)
    run = run_with_toolbar(client, "/products/published/")
    html = run.content("ExplainPanel")
    assert f'data-csrf-url="{reverse("djdt:perf_csrf")}" data-csrf-header="X-CSRFTOKEN"' in html
    assert settings.CSRF_COOKIE_NAME not in run.response.cookies  # the page itself gets none
    url, signed = _analyze_url_and_signed(html)
    assert url == reverse("djdt:perf_explain_analyze")
    assert client.post(url, {"signed": signed}).status_code == 403  # no CSRF token
    response = _csrf_post(client, url, signed)
    assert response.status_code == 200, response.content
    content = response.json()["content"]
    assert_valid_html(content)
    assert "EXPLAIN ANALYZE" in content and "actual" in content
    replay = _csrf_post(client, url, signed)  # a signed value is single-use
    assert replay.status_code == 410 and b"used already" in replay.content
    _, fresh = _analyze_url_and_signed(run.content("ExplainPanel"))  # reloading the panel
    assert _csrf_post(client, url, fresh).status_code == 200


@pytest.mark.django_db
def test_analyze_endpoint_refuses_an_expired_button(demo_data: None) -> None:
    client = Client(enforce_csrf_checks=True)
    run = run_with_toolbar(client, "/products/published/")
    url, signed = _analyze_url_and_signed(run.content("ExplainPanel"))
    payload = SignedDataForm({"signed": signed}).verified_data()
    old = {**payload, "issued": str(int(time.time()) - ONCE_MAX_AGE_S - 5)}
    expired = _csrf_post(client, url, SignedDataForm.sign(old))
    assert expired.status_code == 410 and b"expired" in expired.content
    assert _csrf_post(client, url, signed).status_code == 200  # the fresh one, same nonce


@pytest.mark.django_db
def test_analyze_endpoint_refuses_forged_or_unsigned_data(
    demo_data: None, client: Client, toolbar_client: Any
) -> None:
    run = toolbar_client("/products/published/")
    url = reverse("djdt:perf_explain_analyze")
    assert client.post(url, {"signed": "x"}).status_code == 400
    assert client.post(url, {"sql": "DELETE FROM shop_product"}).status_code == 400
    assert client.get(url).status_code in (405, 404)
    unknown = {"request_id": run.request_id, "panel_id": "ExplainPanel", "shape": "default-nope"}
    # Signed by the toolbar but not by the panel (no nonce, no time of issue): refused.
    assert client.post(url, {"signed": SignedDataForm.sign(unknown)}).status_code == 400
    forged = SignedDataForm.sign({**unknown, "nonce": "n", "issued": str(int(time.time()))})
    assert client.post(url, {"signed": forged}).status_code == 404
    assert Product.objects.count() == 100_000
    _, signed = _analyze_url_and_signed(run.content("ExplainPanel"))
    with override_settings(DEBUG=False):  # the toolbar's show-toolbar check applies
        assert client.post(url, {"signed": signed}).status_code == 404


@pytest.mark.django_db
def test_writes_are_listed_but_not_analysed_by_default(
    demo_data: None, toolbar_client: Any
) -> None:
    with override_settings(ROOT_URLCONF="tests.explain.explain_urls"):
        run = toolbar_client("/write/")
        html = run.content("ExplainPanel")
    assert "UPDATE" in html and "ALLOW_ANALYZE_WRITES" in html
    assert 'djdt-perf-analyze"' not in html.split("UPDATE", 1)[1].split("</section>", 1)[0]
