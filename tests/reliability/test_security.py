"""The endpoints the panels add: show-toolbar check, signed identifiers only, 4xx on abuse.

Endpoints (from each panel's ``get_urls()``): ``djdt:perf_export`` (GET, every
panel with exports), ``djdt:perf_explain_analyze`` (POST, ExplainPanel) and
``djdt:perf_instances_heap`` (GET, ModelInstancesPanel). Inputs are fuzzed with
hypothesis: forged, tampered, replayed (a valid signature made for another
endpoint, request, panel or shape), malformed and oversized. Every statement the
SQLite connection runs is logged at the driver level (trace callback): abuse
runs none, changes no data, and gets a 4xx, never a 500.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from debug_toolbar.forms import SignedDataForm
from django.core import signing
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import run_with_toolbar

PANELS = ("SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel")
HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def _setup(our_urls: None, db: None) -> Iterator[None]:
    from shop.models import Category, Product

    cats = Category.objects.bulk_create(Category(name=f"Cat {i}") for i in range(5))
    Product.objects.bulk_create(
        Product(name=f"P{i}", category=cats[i % 5], price=1, published=i % 2 == 0, popularity=i)
        for i in range(20)
    )
    yield


@pytest.fixture
def statements() -> Iterator[list[str]]:
    connection.ensure_connection()
    log: list[str] = []
    connection.connection.set_trace_callback(log.append)
    yield log
    connection.connection.set_trace_callback(None)


@pytest.fixture
def stored() -> dict[str, Any]:
    """A real request in the toolbar's store, and the signed links its panels hand out."""
    run = run_with_toolbar(Client(), "/r/page/")
    explain = run.content("ExplainPanel")
    shape_signed = [unescape(s) for s in re.findall(r'name="signed" value="([^"]+)"', explain)]
    shape_signed += [unescape(s) for s in re.findall(r'data-signed="([^"]+)"', explain)]
    assert shape_signed, "no signed shape in the ExplainPanel"
    exports = {
        p: [unescape(u) for u in re.findall(r'href="([^"]*perf/export[^"]*)"', run.content(p))]
        for p in PANELS
    }
    heap = re.findall(r'"([^"]*perf/instances/heap[^"]*)"', run.content("ModelInstancesPanel"))
    return {
        "request_id": run.request_id,
        "shape_signed": shape_signed[0],
        "exports": exports,
        "heap": unescape(heap[0]) if heap else None,
        "record": run.record("ExplainPanel"),
    }


def data_rows() -> tuple[int, int]:
    from shop.models import Category, Product

    return Category.objects.count(), Product.objects.count()


def call(endpoint: str, signed: str | None) -> Any:
    client = Client(raise_request_exception=False)
    url = reverse(f"djdt:{endpoint}")
    data = {} if signed is None else {"signed": signed}
    if endpoint == "perf_explain_analyze":
        return client.post(url, data)
    return client.get(url, data)


ENDPOINTS = ("perf_export", "perf_explain_analyze", "perf_instances_heap")


def assert_refused(response: Any, statements: list[str], before: tuple[int, int]) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert statements == [], statements
    statements.clear()
    assert data_rows() == before


# -- controls: the endpoints work with the toolbar's own links ----------------------------


def test_valid_links_work(stored: dict[str, Any], statements: list[str]) -> None:
    for panel_id, links in stored["exports"].items():
        for url in links:
            response = Client().get(url)
            assert response.status_code == 200, (panel_id, url, response.content[:200])
    response = call("perf_explain_analyze", stored["shape_signed"])
    assert response.status_code == 200, response.content[:300]
    assert statements, "the driver-level log saw nothing: the refusal checks would prove nothing"


@pytest.mark.parametrize("hidden", [{"DEBUG": False}, {"INTERNAL_IPS": []}], ids=str)
def test_every_endpoint_obeys_show_toolbar(
    hidden: dict[str, Any], stored: dict[str, Any], statements: list[str]
) -> None:
    before = data_rows()
    statements.clear()
    urls = [u for links in stored["exports"].values() for u in links]
    assert urls and stored["heap"]
    with override_settings(**hidden):
        for url in [*urls, stored["heap"]]:
            assert Client().get(url).status_code == 404, url
        analyze = Client().post(
            "/__debug__/perf/explain/analyze/", {"signed": stored["shape_signed"]}
        )
        assert analyze.status_code == 404
    assert statements == [] and data_rows() == before


def test_wrong_methods(stored: dict[str, Any]) -> None:
    assert Client().get(reverse("djdt:perf_explain_analyze")).status_code == 405
    assert Client().post(reverse("djdt:perf_export")).status_code == 405
    assert Client().post(reverse("djdt:perf_instances_heap")).status_code == 405


# -- fuzzing -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=8,
)
identifiers = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "../../etc/passwd",
            "SQLPanel",
            "ExplainPanel",
            "ExplainPanel\x00",
            "default-' OR 1=1 --",
            "</script><script>alert(1)</script>",
            "x" * 5000,
        ]
    ),
    json_values,
)


@given(signed=st.one_of(st.text(max_size=300), st.binary(max_size=200).map(repr)))
@HYPOTHESIS
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_malformed_signatures(endpoint: str, signed: str, statements: list[str]) -> None:
    before = data_rows()
    statements.clear()
    assert_refused(call(endpoint, signed), statements, before)


@given(
    payload=st.fixed_dictionaries(
        {},
        optional={
            "request_id": identifiers,
            "panel_id": identifiers,
            "shape": identifiers,
            "format": identifiers,
            "action": identifiers,
        },
    ),
    how=st.sampled_from(["other-key", "other-salt", "tampered", "unsigned-json"]),
)
@HYPOTHESIS
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_forged_signatures(
    endpoint: str, payload: dict[str, Any], how: str, statements: list[str]
) -> None:
    """Any payload at all, signed any way but the toolbar's: refused before it is read."""
    import json

    if how == "other-key":
        signed = signing.Signer(key="not-the-secret", salt=SignedDataForm.salt).sign(
            json.dumps(payload)
        )
    elif how == "other-salt":
        signed = signing.Signer(salt="another-app").sign(json.dumps(payload))
    elif how == "tampered":
        signed = SignedDataForm.sign(payload)
        value, sig = signed.rsplit(":", 1)
        signed = value.replace("}", ' , "x": 1}', 1) + ":" + sig
    else:
        signed = json.dumps(payload)
    before = data_rows()
    statements.clear()
    assert_refused(call(endpoint, signed), statements, before)


@given(
    payload=st.fixed_dictionaries(
        {},
        optional={
            "request_id": identifiers,
            "panel_id": identifiers,
            "shape": identifiers,
            "format": identifiers,
            "action": identifiers,
        },
    )
)
@HYPOTHESIS
@pytest.mark.parametrize("endpoint", ["perf_export", "perf_explain_analyze"])
def test_validly_signed_but_wrong_identifiers(
    endpoint: str, payload: dict[str, Any], stored: dict[str, Any], statements: list[str]
) -> None:
    """Signed by the toolbar but naming nothing real (a stale, made-up or mixed-up id)."""
    before = data_rows()
    statements.clear()
    assert_refused(call(endpoint, SignedDataForm.sign(payload)), statements, before)


def _replays(stored: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rid = stored["request_id"]
    shape = stored["record"]["shapes"][0]["id"]
    return [
        # a signature made for one endpoint, sent to another
        ("perf_explain_analyze", {"request_id": rid, "panel_id": "ExplainPanel", "format": "x"}),
        ("perf_explain_analyze", {"request_id": rid, "action": "heap"}),
        ("perf_export", {"request_id": rid, "panel_id": "ExplainPanel", "shape": shape}),
        ("perf_export", {"request_id": rid, "action": "heap"}),
        ("perf_instances_heap", {"request_id": rid, "panel_id": "ExplainPanel", "shape": shape}),
        ("perf_instances_heap", {"request_id": rid, "panel_id": "ModelInstancesPanel"}),
        # the toolbar's own SQL panel signatures (same signer and salt)
        ("perf_explain_analyze", {"request_id": rid, "djdt_query_id": "1"}),
        ("perf_export", {"request_id": rid, "djdt_query_id": "1"}),
        # right endpoint, another request / panel / shape
        ("perf_explain_analyze", {"request_id": "0" * 32, "panel_id": "ExplainPanel", "shape": shape}),  # noqa: E501
        ("perf_explain_analyze", {"request_id": rid, "panel_id": "SQLPanel", "shape": shape}),
        ("perf_explain_analyze", {"request_id": rid, "panel_id": "ModelInstancesPanel", "shape": shape}),  # noqa: E501
        ("perf_explain_analyze", {"request_id": rid, "panel_id": "ExplainPanel", "shape": shape + "x"}),  # noqa: E501
        ("perf_explain_analyze", {"request_id": rid, "panel_id": "ExplainPanel", "shape": 1}),
        ("perf_export", {"request_id": rid, "panel_id": "SQLPanel", "format": "speedscope"}),
        ("perf_export", {"request_id": rid, "panel_id": "SamplingProfilerPanel", "format": "../x"}),
        ("perf_export", {"request_id": rid, "panel_id": "SamplingProfilerPanel", "format": ["x"]}),
        ("perf_export", {"request_id": "0" * 32, "panel_id": "SamplingProfilerPanel", "format": "collapsed"}),  # noqa: E501
    ]  # fmt: skip


def test_replayed_signatures(stored: dict[str, Any], statements: list[str]) -> None:
    before = data_rows()
    for endpoint, payload in _replays(stored):
        statements.clear()
        response = call(endpoint, SignedDataForm.sign(payload))
        assert 400 <= response.status_code < 500, (endpoint, payload, response.status_code)
        assert statements == [], (endpoint, payload, statements)
    assert data_rows() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("size", [4097, 100_000, 2_000_000])
def test_oversized(endpoint: str, size: int, stored: dict[str, Any], statements: list[str]) -> None:
    before = data_rows()
    statements.clear()
    signed = SignedDataForm.sign({"request_id": stored["request_id"], "pad": "x" * size})
    assert_refused(call(endpoint, signed), statements, before)


def test_vmprof_export_names_no_file_outside_its_directory(stored: dict[str, Any]) -> None:
    """The raw vmprof file name comes from the stored record: only a bare kept name is read."""
    from debug_toolbar_perf.sampling import vmprof_engine

    for name in ["../../../etc/passwd", "/etc/passwd", "..", "a/../../b.vmprof", "x.vmprof\x00"]:
        assert vmprof_engine.raw_path(name) is None, name


# -- exports written to EXPORT_DIR stay in it ----------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/r/any/..%2F..%2F..%2Ftmp%2Fevil/",
        "/r/any/%2E%2E/%2E%2E/%2E%2E/escape/",
        "/r/any/" + "a" * 300 + "/",
        "/r/any/%00nul%0Aline%22quote/",
        "/r/any/<script>/",
    ],
)
def test_export_dir_files_stay_inside(path: str, tmp_path: Path) -> None:
    directory = tmp_path / "exports"
    outside_before = set(os.listdir(tmp_path))
    with override_settings(DEBUG_TOOLBAR_PERF={"EXPORT_DIR": str(directory)}):
        run = run_with_toolbar(Client(raise_request_exception=False), path)
    written = run.record("SamplingProfilerPanel")["export_file"]
    assert written and Path(written).resolve().parent == directory.resolve()
    assert set(os.listdir(tmp_path)) == outside_before | {"exports"}
    assert len(os.listdir(directory)) == 1
    assert re.fullmatch(r"[A-Za-z0-9._-]+", os.path.basename(written))


# -- escaping: HTML and JavaScript in code and SQL are text -------------------------------------

RAW = re.compile(r"<script>alert|<img src=x", re.I)  # a raw tag; escaped text is harmless


def test_demo_xss_page_is_escaped_in_every_panel() -> None:
    run = run_with_toolbar(Client(), "/xss/")
    assert run.response.status_code == 200
    shown = {}
    for panel_id in PANELS:
        html = run.content(panel_id)
        assert not RAW.search(html), (panel_id, RAW.search(html))
        shown[panel_id] = html
    # The hostile text is there, as text: escaped in HTML or in json_script data.
    assert "&lt;/script&gt;&lt;script&gt;alert(&#x27;sql&#x27;)" in shown["ExplainPanel"]
    assert "alert(&#x27;line&#x27;)" in shown["LineMemoryPanel"]
    assert (
        "\\u003C/script\\u003E\\u003Cscript\\u003Ealert(&#x27;fn&#x27;)"
        in shown["SamplingProfilerPanel"]
        or "&lt;/script&gt;&lt;script&gt;alert(&#x27;fn&#x27;)" in shown["SamplingProfilerPanel"]
    )
    # the toolbar itself (sidebar, SQL panel) is not ours to check, but the page must not
    # have gained a second <script>alert: the view's own output is escaped by its template.
    assert not RAW.search(run.response.content.decode())
