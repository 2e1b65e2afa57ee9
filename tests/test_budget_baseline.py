"""perf_budget(baseline=..., max_growth=...): fail when instances, queries or time grow
against a saved run, saying what changed."""

from __future__ import annotations

import pytest

from debug_toolbar_perf.testing import PerfBudgetExceeded, perf_budget
from shop.seed import seed
from tests.management.test_profile_request import run

pytestmark = pytest.mark.django_db


@pytest.fixture
def saved_fixed(db, tmp_path):
    seed(products=600, reviews=1000)
    path = tmp_path / "fixed.json"
    run("/products/fixed/", "--panels", "instances,explain", "--save", str(path))
    return path


def test_the_n_plus_one_page_grows_past_its_fixed_baseline(client, saved_fixed):
    with (
        pytest.raises(PerfBudgetExceeded) as info,
        perf_budget(baseline=saved_fixed, max_growth=0.1),
    ):
        client.get("/products/n-plus-one/")
    message = str(info.value)
    assert "SQL statements grew from 1 to 101 (+10000%) against GET /products/fixed/" in message
    assert "new: N+1 on shop.Category" in message
    assert "model instances grew" not in message  # 50 products + 50 categories either way


def test_the_same_page_stays_within_its_baseline(client, saved_fixed):
    with perf_budget(baseline=saved_fixed, max_growth=0.1) as cap:
        client.get("/products/fixed/")
    assert len(cap.runs) == 1 and set(cap.runs[0].stats) == {"instances", "explain"}


def test_baseline_and_max_growth_go_together(saved_fixed):
    with pytest.raises(ValueError, match="go together"), perf_budget(baseline=saved_fixed):
        pass
