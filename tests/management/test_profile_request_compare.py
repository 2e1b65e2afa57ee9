"""profile_request --save / --compare / --repeat merging, on the demo's N+1 page and its twin."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError

from shop.seed import seed
from tests.management.test_profile_request import fails, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_data(db):
    seed(products=600, reviews=1000)


def test_save_then_compare_the_fixed_twin(demo_data, tmp_path):
    saved = tmp_path / "n_plus_one.json"
    out, _ = run("/products/n-plus-one/", "--panels", "instances,explain", "--save", str(saved))
    assert f"Records saved to {saved}" in out
    body = json.loads(saved.read_text())
    assert (
        body["format"] == "debug-toolbar-perf-run" and body["label"] == "GET /products/n-plus-one/"
    )
    assert set(body["stats"]) == {"instances", "explain"}
    out, _ = run("/products/fixed/", "--panels", "instances,explain", "--compare", str(saved))
    assert "== \u0394 against GET /products/n-plus-one/ " in out
    assert "EXPLAIN: \u2212100 queries, \u22122 shapes" in out  # 1 + 50 + 50 -> 1
    assert "N+1 on shop.Category fixed: \u221250 queries" in out
    assert "Model instances: N+1 on shop.Category fixed" in out


def test_repeat_merges_the_sampling_runs_and_compares_last_with_first(demo_data):
    out, _ = run("/cpu/?n=2000", "--panels", "sampling", "--repeat", "3", "--compare")
    merged = next(ln for ln in out.splitlines() if ln.startswith("Sampling: the 3 runs merged"))
    samples = float(merged.rsplit(",", 1)[1].split()[0].replace(",", ""))
    assert samples > 0
    assert "== \u0394 against the first run " in out
    assert "Sampling profiler: " in out


def test_compare_usage_errors(db, tmp_path):
    error, _, _ = fails("/products/fixed/", "--compare")
    assert error.returncode == 2 and "--repeat 2" in str(error)
    error, _, _ = fails("/products/fixed/", "--compare", str(tmp_path / "missing.json"))
    assert error.returncode == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    error, _, _ = fails("/products/fixed/", "--compare", str(bad))
    assert isinstance(error, CommandError) and "not a saved run" in str(error)
