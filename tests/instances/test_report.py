"""Findings and subtitle from a stored instances record."""

from __future__ import annotations

from typing import Any

from debug_toolbar_perf.instances.report import findings, shape, subtitle


def site(count: int, called: str | None, queries: list[int], related: Any = None) -> dict:
    where = {"file": "shop/views.py", "line": 3, "function": "f", "code": "if qs:", "project": True}
    return {
        "count": count,
        "where": where,
        "called": called,
        "related": related,
        "query_count": len(queries),
        "queries": queries,
    }


def record(models: list[dict], queries: dict | None = None) -> dict[str, Any]:
    return {
        "total": sum(m["count"] for m in models),
        "models": models,
        "threshold": 1000,
        "n_plus_one": 5,
        "sql": {"present": True, "queries": queries or {}},
    }


def test_threshold_and_truth_test() -> None:
    rec = record(
        [{"label": "shop.Review", "count": 20_001, "sites": [site(20_000, "__bool__", [0])]}]
    )
    kinds = [f["kind"] for f in findings(rec)]
    assert kinds == ["count", "evaluation"]
    assert ".exists()" in findings(rec)[1]["fix"]
    assert subtitle(rec) == "20,001 instances · shop.Review 20,001"


def test_below_threshold_no_findings() -> None:
    rec = record([{"label": "shop.Review", "count": 1000, "sites": [site(1000, "__bool__", [0])]}])
    assert findings(rec) == []


def test_n_plus_one_needs_one_shape_and_one_row_per_query() -> None:
    same = {str(i): {"raw_sql": f"SELECT * FROM c WHERE id = {i}"} for i in range(6)}
    hint = {"kind": "select_related", "field": "category"}
    rec = record(
        [{"label": "shop.Category", "count": 6, "sites": [site(6, None, list(range(6)), hint)]}],
        same,
    )
    found = findings(rec)
    assert [f["kind"] for f in found] == ["n_plus_one"]
    assert "select_related('category')" in found[0]["fix"]
    mixed = {str(i): {"raw_sql": f"SELECT * FROM t{i}"} for i in range(6)}
    rec = record(
        [{"label": "shop.Category", "count": 6, "sites": [site(6, None, list(range(6)))]}], mixed
    )
    assert findings(rec) == []
    many_rows = record(
        [{"label": "shop.Category", "count": 600, "sites": [site(600, None, list(range(6)))]}], same
    )
    assert findings(many_rows) == []


def test_shape_strips_literals() -> None:
    assert (
        shape("SELECT 1 FROM t WHERE a = 'x' AND b = 12") == "SELECT ? FROM t WHERE a = ? AND b = ?"
    )


def test_subtitle_empty() -> None:
    assert subtitle({"total": 0, "models": []}) == "0 instances"


def test_finding_names_the_site_by_its_short_path() -> None:
    from shop import views

    built = site(20_000, "__bool__", [0])
    built["where"] = {**built["where"], "file": views.__file__, "line": 231}
    rec = record([{"label": "shop.Review", "count": 20_000, "sites": [built]}])
    text = findings(rec)[1]["text"]
    assert text.startswith("shop/views.py:231 in f built 20,000"), text  # not /…/demo/shop/…
