"""manage.py profile_request: options, report, exports, budgets and error paths."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from shop.seed import seed
from tests.management.urls import SEEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_data(db):
    seed(products=600, reviews=2000)


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("profile_request", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args: str) -> tuple[CommandError, str, str]:
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as info:
        call_command("profile_request", *args, stdout=out, stderr=err)
    return info.value, out.getvalue(), err.getvalue()


def test_report_of_the_truthy_page_has_every_panel(demo_data):
    out, _ = run("/reviews/summary/")
    assert out.startswith("GET /reviews/summary/ -> 200 · 1 run: ")
    for section in (
        "== Sampling profiler · ",
        "== Line memory · ",
        "== Model instances · ",
        "== EXPLAIN · ",
    ):
        assert section in out
    assert "2,001 instances · shop.Review 2,001" in out
    assert "2,000 at " in out and "in get_first_review" in out
    assert "fix: use .exists() (or .first() alone)" in out
    assert "Hot functions" in out


def test_panels_option_limits_the_report(demo_data):
    out, _ = run("/products/n-plus-one/", "--panels", "explain")
    assert "== EXPLAIN · 3 shapes explained · 2 findings" in out
    assert "Sampling profiler" not in out and "Model instances" not in out
    assert 'in Django: Product.objects....select_related("category")' in out


def test_unknown_panel_is_a_usage_error():
    err, _, _ = fails("/categories/", "--panels", "sampling,gpu")
    assert err.returncode == 2 and "unknown panel 'gpu'" in str(err)


def test_url_that_does_not_resolve(db):
    err, _, _ = fails("/nowhere/")
    assert err.returncode == 2
    assert "/nowhere/ does not resolve to a view" in str(err)
    err, _, _ = fails("/categories")
    assert "did you mean /categories/ ?" in str(err)


def test_unknown_user(db):
    err, _, _ = fails("/categories/", "--user", "ghost")
    assert err.returncode == 2 and "no user with username 'ghost'" in str(err)


@pytest.mark.urls("tests.management.urls")
def test_user_method_headers_body_and_query(db, tmp_path):
    get_user_model().objects.create_user("alice", password="x")
    run(
        "/echo/?q=1",
        "--user",
        "alice",
        "--method",
        "post",
        "-H",
        "X-Thing: yes",
        "--data",
        "a=1&b=2",
        "--panels",
        "sampling",
    )
    assert SEEN == {
        "method": "POST",
        "user": "alice",
        "thing": "yes",
        "body": b"a=1&b=2",
        "content_type": "application/x-www-form-urlencoded",
        "query": "1",
    }
    body = tmp_path / "body.json"
    body.write_text('{"k": 1}')
    run(
        "/echo/",
        "--method",
        "PUT",
        "--data-file",
        str(body),
        "--content-type",
        "application/json",
        "--panels",
        "explain",
    )
    assert SEEN["method"] == "PUT" and SEEN["user"] is None
    assert SEEN["body"] == b'{"k": 1}' and SEEN["content_type"] == "application/json"


def test_bad_header_and_missing_data_file(db, tmp_path):
    err, _, _ = fails("/categories/", "-H", "no-colon")
    assert err.returncode == 2 and "'Name: value'" in str(err)
    err, _, _ = fails("/categories/", "--data-file", str(tmp_path / "missing"))
    assert err.returncode == 2 and "cannot read --data-file" in str(err)


def test_repeat_shows_progress_and_spread(demo_data):
    out, err = run("/categories/", "--repeat", "3", "--panels", "explain")
    assert "3 runs: median " in out and "min–max " in out
    assert "[##############################] 3/3" in err
    err_, _, _ = fails("/categories/", "--repeat", "0")
    assert err_.returncode == 2


def test_output_writes_the_exports(demo_data, tmp_path):
    out, _ = run("/cpu/", "--output", str(tmp_path), "--panels", "sampling,memory,instances")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "report.html" in names
    speedscope = next(tmp_path.glob("*.speedscope.json"))
    assert json.loads(speedscope.read_text())["$schema"].startswith("https://www.speedscope")
    collapsed = next(tmp_path.glob("*.collapsed.txt")).read_text()
    assert "slow_primes" in collapsed
    assert (tmp_path / "line-memory.txt").read_text().startswith("Filename: ")
    page = (tmp_path / "report.html").read_text()
    assert "<style>" in page and "#djDebug .djdt-perf" in page
    assert 'rel="stylesheet"' not in page  # every stylesheet is inlined
    scripts = re.findall(r"<script[^>]*>", page)
    assert all('type="application/json"' in tag for tag in scripts)  # data only, no code
    assert "Sampling profiler" in page and "Model instances" in page
    # Without the panels' script the flame graph's controls would do nothing: none are shown.
    for control in ("djdt-perf-flame-search", "hide library frames", "Reset zoom", "<canvas"):
        assert control not in page, control
    assert "Flame graph: in the speedscope file next to this page" in page
    assert "Exports written:" in out


def test_view_that_raises_still_reports(db, tmp_path):
    err, out, stderr = fails("/t/raises/", "--output", str(tmp_path), "--panels", "sampling")
    assert err.returncode == 1
    assert "the view raised" in str(err)
    assert "Traceback (most recent call last)" in stderr
    assert "-> 500" in out and "== Sampling profiler" in out
    assert (tmp_path / "report.html").exists()


def test_budgets_pass_and_fail_with_exit_codes(demo_data):
    run(
        "/products/fixed/",
        "--max-repeated-query-shape",
        "1",
        "--max-queries",
        "2",
        "--max-instances",
        "shop.Product=50",
        "--panels",
        "instances,explain",
    )
    err, out, _ = fails(
        "/products/n-plus-one/",
        "--max-repeated-query-shape",
        "1",
        "--panels",
        "explain",
        "--repeat",
        "2",
    )
    assert err.returncode == 1
    assert "one query shape ran 50 times; the budget is 1. (in 2 of 2 runs)" in str(err)
    assert "== EXPLAIN" in out  # the report is printed before the failure
    err, _, _ = fails(
        "/reviews/summary/",
        "--max-instances",
        "shop.Review=100",
        "--max-total-instances",
        "10",
        "--panels",
        "instances",
    )
    assert "2,001 shop.Review instances built; the budget is 100." in str(err)
    assert "2,001 model instances built; the budget is 10." in str(err)
    err, _, _ = fails("/products/n-plus-one/", "--fail-on-findings", "--panels", "explain")
    assert err.returncode == 1 and "N+1: the same query ran 50 times." in str(err)
    run("/products/fixed/", "--fail-on-findings", "--panels", "explain")


def test_full_scans_and_time_budgets(demo_data, settings):
    settings.DEBUG_TOOLBAR_PERF = {"EXPLAIN": {"FULL_SCAN_ROWS": 100}}
    err, _, _ = fails("/products/published/", "--no-full-scans", "--panels", "explain")
    assert "Full scan of shop_product (600 rows)." in str(err)
    err, _, _ = fails("/cpu/", "--max-ms", "0.001", "--panels", "sampling")
    assert "(median of the runs); the budget is 0.0 ms." in str(err) and "slow_primes" in str(err)
    run("/categories/", "--max-ms", "60000", "--panels", "sampling")


def test_budget_needs_its_panel_and_valid_values(db):
    err, _, _ = fails("/categories/", "--max-ms", "5", "--panels", "explain")
    assert err.returncode == 2 and "need the sampling panel" in str(err)
    err, _, _ = fails("/categories/", "--max-instances", "Product=5")
    assert err.returncode == 2 and "app_label.Model=N" in str(err)


def test_exit_codes_from_the_real_command_line(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "demo/manage.py", "profile_request", "/nowhere/"],
        cwd=root,
        env={"DEMO_SQLITE_PATH": str(tmp_path / "x.sqlite3"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "CommandError: /nowhere/ does not resolve" in result.stderr
