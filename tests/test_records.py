"""The record contracts (TypedDicts in each feature) match what the panels really store.

mypy checks the code that builds and reads records against these types; this checks the
records themselves, after the toolbar's JSON store round trip, on a real request through
all four panels.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.utils.safestring import mark_safe

from debug_toolbar_perf.explain.record import ExplainRecord, IssuedAt, ShapeRecord
from debug_toolbar_perf.instances.record import InstancesRecord, ModelRecord, SiteRecord
from debug_toolbar_perf.line_memory.record import LineMemoryRecord, TracedFunction
from debug_toolbar_perf.records import Frame, RecordError, Stats, check_json
from debug_toolbar_perf.sampling.calltree import SamplingRecord
from shop.models import Category, Product, Review


def assert_keys(value: dict[str, Any], contract: Any) -> None:
    keys = set(value)
    missing = set(contract.__required_keys__) - keys
    unknown = keys - set(contract.__required_keys__) - set(contract.__optional_keys__)
    assert not missing and not unknown, (contract.__name__, missing, unknown)


@pytest.mark.django_db
def test_stored_records_follow_their_contracts(toolbar_client: Any) -> None:
    category = Category.objects.create(name="c")
    for i in range(6):
        product = Product.objects.create(name=f"p{i}", category=category, price=1)
        Review.objects.create(product=product, rating=3, text="t")
    run = toolbar_client("/products/n-plus-one/")
    for panel_id, contract in (
        ("SamplingProfilerPanel", SamplingRecord),
        ("LineMemoryPanel", LineMemoryRecord),
        ("ModelInstancesPanel", InstancesRecord),
        ("ExplainPanel", ExplainRecord),
    ):
        stats = run.stats(panel_id)
        assert_keys(stats, Stats)
        assert_keys(run.record(panel_id), contract)
    for function in run.record("LineMemoryPanel")["functions"]:
        assert_keys(function, TracedFunction)
    models = run.record("ModelInstancesPanel")["models"]
    assert models
    for model in models:
        assert_keys(model, ModelRecord)
        for site in model["sites"]:
            assert_keys(site, SiteRecord)
            for frame in site["stack"]:
                assert_keys(frame, Frame)
    shapes = run.record("ExplainPanel")["shapes"]
    assert shapes
    for shape in shapes:
        assert_keys(shape, ShapeRecord)
        for frame in shape["stack"]:
            assert_keys(frame, Frame)
        assert shape["lines"]
        for line in shape["lines"]:
            assert_keys(line, IssuedAt)


@pytest.mark.parametrize(
    ("record", "says"),
    [
        ({"rows": [[1, (2, 3)]]}, "stats['record']['rows'][0][1] is a tuple, not JSON-native"),
        ({"by_id": {7: "x"}}, "stats['record']['by_id'] has non-string key 7"),
        ({"share": [0.5, float("nan")]}, "stats['record']['share'][1] is nan"),
        ({"share": float("inf")}, "stats['record']['share'] is inf"),
        ({"price": Decimal("1.5")}, "stats['record']['price'] is a Decimal, not JSON-native"),
        ({"flag": {True: 1}}, "stats['record']['flag'] has non-string key True"),
    ],
)
def test_check_json_names_what_the_store_would_change(record: Any, says: str) -> None:
    with pytest.raises(RecordError) as raised:
        check_json({"record": record})
    assert says in str(raised.value)


def test_check_json_accepts_json_native_records_with_str_subclasses() -> None:
    check_json({"record": {"html": mark_safe("<b>"), "n": [1, 2.5, None, True, {"k": "v"}]}})
