"""Terminal renderers: from stored stats, the same analysis as the panels."""

from __future__ import annotations

import pytest

from debug_toolbar_perf.instances import report as inst_analysis
from debug_toolbar_perf.render import terminal
from debug_toolbar_perf.runner import capture
from debug_toolbar_perf.sampling.report import hot_functions
from shop.seed import seed


@pytest.fixture
def stored(client, db):
    """Stats of one request per page, read back from the toolbar's JSON store."""
    seed(products=600, reviews=2000)

    def _get(path: str, panels: str) -> dict:
        with capture(panels.split(",")) as cap:
            client.get(path)
        return cap.runs[-1].stats

    return _get


def test_instances_section_matches_the_panel_analysis(stored):
    stats = stored("/reviews/summary/", "instances")["instances"]
    text = terminal.instances(stats)
    assert text.startswith("== Model instances · " + inst_analysis.subtitle(stats["record"]))
    for finding in inst_analysis.findings(stats["record"]):
        assert finding["fix"] in text
    assert "in get_first_review" in text and "if self.queryset:" in text


def test_sampling_section_lists_the_panel_s_hot_functions(stored):
    stats = stored("/cpu/", "sampling")["sampling"]
    text = terminal.sampling(stats)
    top = hot_functions(stats["record"], "self", terminal.TOP)
    assert top and all(row["name"] in text for row in top)
    assert "* " in text  # project code is marked
    assert "slow_primes" in text


def test_explain_section_shows_findings_and_fixes(stored):
    text = terminal.explain(stored("/products/n-plus-one/", "explain")["explain"])
    assert "3 shapes explained · 2 findings" in text
    assert "N+1: the same query ran 50 times" in text
    assert "issued at " in text
    assert "101 statements in 3 shapes · " in text


def test_explain_counts_agree_with_their_nouns(stored):
    text = terminal.explain(stored("/products/", "explain")["explain"])
    assert "  1 statement in 1 shape · " in text  # was "1 statements in 1 shapes"


def test_line_memory_section_lists_the_heaviest_line(stored):
    text = terminal.line_memory(stored("/memory/", "memory")["memory"])
    assert "big_list = [0] * 6_000_000" in text
    assert "Heaviest lines" in text


def test_report_orders_sections_and_skips_absent_panels():
    stats = {"explain": {"record": None, "errors": [], "problem": None}}
    text = terminal.report(stats)
    assert text.startswith("== EXPLAIN")
    assert "Nothing was recorded for this request." in text


def test_problem_and_errors_are_shown_like_the_panel():
    stats = {
        "problem": {"message": "LineMemoryPanel needs psutil.", "fix": 'pip install "x[memory]"'},
        "errors": [],
        "record": None,
    }
    text = terminal.line_memory(stats)
    assert "not available" in text and 'Fix: pip install "x[memory]"' in text
    stats = {
        "problem": None,
        "errors": [{"stage": "record", "type": "ValueError", "message": "boom"}],
        "record": None,
    }
    text = terminal.instances(stats)
    assert "== Model instances · error" in text
    assert "This panel failed (stage: record): ValueError: boom" in text


def test_timings():
    assert terminal.timings([]) == "no runs"
    assert terminal.timings([12.34]) == "1 run: 12.3 ms"
    assert terminal.timings([3.0, 1.0, 2.0]) == "3 runs: median 2.0 ms, min–max 1.0–3.0 ms"


def test_line_memory_net_is_split_into_parts_that_add_up(stored):
    """A reload frees the previous request's rows in a collection: the terminal names that
    part, as the panel's header does, so the parts add up to the net change."""
    import re

    stored("/reviews/summary/", "memory")
    for _ in range(6):
        text = terminal.line_memory(stored("/reviews/summary/", "memory")["memory"])
        if "garbage collections" in text:
            break
    assert "garbage collections" in text, text
    net = float(re.search(r"\(net ([-+][\d.]+)\)", text).group(1))
    parts = re.findall(
        r"(?:traced lines|others ran|garbage collections|outside them) "
        r"([-+][\d.]+) MiB",
        text,
    )
    assert len(parts) >= 2
    assert sum(float(p) for p in parts) == pytest.approx(net, abs=0.05 * len(parts))
