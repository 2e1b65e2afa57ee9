"""perf_budget: the context manager, the pytest fixture and marker, and Django's TestCase.

The demo's problem pages must break their budgets with a message that says where; their
fixed twins must pass the same budgets.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.test import TestCase

from debug_toolbar_perf.budget import Budget
from debug_toolbar_perf.testing import PerfBudgetExceeded, PerfBudgetMixin, perf_budget
from shop import views
from shop.seed import seed

ROOT = Path(__file__).resolve().parent.parent


def _line(func, text: str) -> int:
    """The line number of ``text`` in ``func``'s source (so the test survives edits)."""
    lines, first = inspect.getsourcelines(func)
    return first + next(i for i, ln in enumerate(lines) if text in ln)


N1_LINE = _line(views.n_plus_one, "rows = [")
TRUTHY_LINE = _line(views.ReviewSummaryView.get_first_review, "if self.queryset:")


@pytest.fixture
def demo_data(db):
    seed(products=600, reviews=2000)


def test_n_plus_one_page_breaks_the_repeated_shape_budget(client, demo_data):
    with pytest.raises(PerfBudgetExceeded) as info, perf_budget(max_repeated_query_shape=1):
        client.get("/products/n-plus-one/")
    text = str(info.value)
    assert isinstance(info.value, AssertionError)
    assert "GET /products/n-plus-one/: one query shape ran 50 times; the budget is 1." in text
    assert f"issued at {_rel(views.__file__)}:{N1_LINE} in <listcomp>" in text or (
        f":{N1_LINE} in " in text
    )
    assert 'select_related("category")' in text  # the plan finding's fix
    assert 'prefetch_related("reviews")' in text
    assert {b.budget for b in info.value.breaches} == {"max_repeated_query_shape"}
    assert len(info.value.breaches) == 2  # category lookup and review count


def test_n_plus_one_page_breaks_the_instances_budget_naming_the_site(client, demo_data):
    with (
        pytest.raises(PerfBudgetExceeded) as info,
        perf_budget(max_instances={"shop.Category": 10}),
    ):
        client.get("/products/n-plus-one/")
    text = str(info.value)
    assert "50 shop.Category instances built; the budget is 10." in text
    assert f"views.py:{N1_LINE} in " in text
    assert "p.category.name" in text  # the code line of the creation site


def test_fixed_twin_passes_the_same_budgets(client, demo_data):
    with perf_budget(max_repeated_query_shape=1, max_queries=1) as cap:
        response = client.get("/products/fixed/")
    assert response.status_code == 200
    assert len(cap.runs) == 1
    # One query: select_related and a correlated count.
    assert cap.runs[0].record("explain")["statements"] == 1


def test_truthy_queryset_page_breaks_the_instances_budget(client, demo_data):
    with (
        pytest.raises(PerfBudgetExceeded) as info,
        perf_budget(max_instances={"shop.Review": 100}),
    ):
        client.get("/reviews/summary/")
    text = str(info.value)
    assert "2,001 shop.Review instances built; the budget is 100." in text
    assert f"2,000 built at {_rel(views.__file__)}:{TRUTHY_LINE} in get_first_review" in text
    assert "if self.queryset:" in text
    assert "use .exists()" in text


def test_truthy_fixed_twin_passes(client, demo_data):
    with perf_budget(max_instances={"shop.Review": 100}, max_total_instances=5) as cap:
        client.get("/reviews/summary/fixed/")
    assert cap.runs[0].record("instances")["total"] == 1


def test_total_instances_budget_lists_the_biggest_models(client, demo_data):
    with pytest.raises(PerfBudgetExceeded) as info, perf_budget(max_total_instances=60):
        client.get("/products/n-plus-one/")
    text = str(info.value)
    assert "100 model instances built; the budget is 60." in text
    assert "shop.Product: 50" in text and "shop.Category: 50" in text


def test_max_queries_names_the_biggest_shapes(client, demo_data):
    with pytest.raises(PerfBudgetExceeded) as info, perf_budget(max_queries=10):
        client.get("/products/n-plus-one/")
    assert "101 SQL statements; the budget is 10." in str(info.value)
    assert '50 x SELECT "shop_category"' in str(info.value)


@pytest.mark.django_db
def test_full_scan_budget_gives_the_finding_and_its_fix(client, settings):
    seed(products=3000, reviews=0)
    settings.DEBUG_TOOLBAR_PERF = {"EXPLAIN": {"FULL_SCAN_ROWS": 100}}
    with pytest.raises(PerfBudgetExceeded) as info, perf_budget(no_full_scans=True):
        client.get("/products/published/")
    text = str(info.value)
    assert "Full scan of shop_product (3,000 rows)." in text
    assert "suggested fix: CREATE INDEX" in text
    assert "issued at" in text and "in unindexed" in text
    # The same page with a lenient threshold passes.
    settings.DEBUG_TOOLBAR_PERF = {"EXPLAIN": {"FULL_SCAN_ROWS": 100_000}}
    with perf_budget(no_full_scans=True, no_plan_findings=True):
        client.get("/products/published/")


def test_time_budget_names_the_hot_functions(client, demo_data):
    with pytest.raises(PerfBudgetExceeded) as info, perf_budget(max_ms=0.001):
        client.get("/cpu/")
    text = str(info.value)
    assert "ms (the request); the budget is 0.0 ms." in text
    assert "slow_primes" in text  # the demo CPU page's hot function
    with perf_budget(max_ms=60_000):
        client.get("/categories/")


def test_every_request_in_the_block_is_checked(client, demo_data):
    with pytest.raises(PerfBudgetExceeded) as info, perf_budget(max_repeated_query_shape=1):
        client.get("/products/fixed/")
        client.get("/products/n-plus-one/")
    assert all(b.request == "GET /products/n-plus-one/" for b in info.value.breaches)


def test_more_requests_than_the_toolbar_store_keeps(client, demo_data, settings):
    settings.DEBUG_TOOLBAR_CONFIG = {**settings.DEBUG_TOOLBAR_CONFIG, "RESULTS_CACHE_SIZE": 2}
    with perf_budget(max_queries=5) as cap:
        for _ in range(5):
            client.get("/categories/")
    assert len(cap.runs) == 5  # read as they finish, before the store evicts them


def test_no_request_in_the_block_is_an_error(db):
    with (
        pytest.raises(PerfBudgetExceeded, match="no request went through"),
        perf_budget(max_queries=1),
    ):
        pass


def test_the_block_s_own_exception_wins(client, demo_data):
    with pytest.raises(ZeroDivisionError), perf_budget(max_queries=0):
        client.get("/products/n-plus-one/")
        1 / 0  # noqa: B018


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError, match="at least one limit"), perf_budget():
        pass
    with pytest.raises(ValueError, match=r"app_label\.ModelName"):
        Budget(max_instances={"Product": 1})
    with pytest.raises(ValueError, match=">= 0"):
        Budget(max_queries=-1)
    with pytest.raises(ValueError, match="unknown panel"), perf_budget(panels="gpu"):
        pass


def test_budget_panels_are_the_cheapest_set():
    assert Budget(max_queries=1).panels() == ["explain"]
    assert Budget(max_instances={"a.B": 1}).panels() == ["instances"]
    assert Budget(max_ms=5).panels() == ["sampling"]


def test_toolbar_settings_are_restored(client, demo_data, settings):
    from debug_toolbar.middleware import show_toolbar_func_or_path

    before = show_toolbar_func_or_path()
    panels = list(settings.DEBUG_TOOLBAR_PANELS)
    with perf_budget(max_queries=5):
        client.get("/categories/")
    assert show_toolbar_func_or_path() is before
    assert list(settings.DEBUG_TOOLBAR_PANELS) == panels


def test_fixture_is_the_context_manager(perf_budget, client, demo_data):
    with pytest.raises(PerfBudgetExceeded), perf_budget(max_instances={"shop.Review": 10}):
        client.get("/reviews/summary/")


@pytest.mark.perf_budget(max_repeated_query_shape=1, max_instances={"shop.Review": 250})
def test_marker_passes_on_the_fixed_pages(client, demo_data):
    client.get("/products/fixed/")
    client.get("/reviews/summary/fixed/")


class DjangoTestCaseBudgets(PerfBudgetMixin, TestCase):
    """Django's TestCase (transactions, self.client) with assertPerfBudget."""

    @classmethod
    def setUpTestData(cls):
        seed(products=600, reviews=2000)

    def test_truthy_page_fails(self):
        with (
            self.assertRaises(AssertionError) as info,
            self.assertPerfBudget(max_instances={"shop.Review": 100}),
        ):
            self.client.get("/reviews/summary/")
        self.assertIn("if self.queryset:", str(info.exception))

    def test_fixed_page_passes(self):
        with self.assertPerfBudget(max_instances={"shop.Review": 100}, max_queries=3):
            self.client.get("/reviews/summary/fixed/")


# --- the plugin in separate pytest processes -------------------------------------------


def _rel(path: str) -> str:
    return os.path.relpath(path)


def _pytest(tmp_path: Path, body: str, *args: str, env: dict | None = None):
    test = tmp_path / "test_budget_plugin.py"
    test.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_marker_fails_a_test_under_the_django_test_setup(tmp_path):
    """DEBUG stays False here (pytest-django's default), so the toolbar's URLs are absent
    from the URLconf: perf_budget adds them while it runs."""
    result = _pytest(
        tmp_path,
        """
        import pytest
        from shop.seed import seed

        @pytest.mark.perf_budget(max_instances={"shop.Review": 100})
        def test_truthy(client, db):
            seed(products=600, reviews=2000)
            assert client.get("/reviews/summary/").status_code == 200
        """,
        "--ds=tests.settings",
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "PerfBudgetExceeded" in out
    assert "2,001 shop.Review instances built; the budget is 100." in out
    assert "if self.queryset:" in out


@pytest.mark.slow
def test_plugin_does_not_break_a_project_without_django(tmp_path):
    env = {"DJANGO_SETTINGS_MODULE": ""}
    result = _pytest(
        tmp_path,
        """
        import sys

        def test_plain(request):
            assert "django.db" not in sys.modules
            assert request.config.pluginmanager.has_plugin("debug_toolbar_perf")
        """,
        "-p",
        "no:django",
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
