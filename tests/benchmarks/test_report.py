"""The benchmark table says something true for rows with no ratio (it printed "xnan")."""

from __future__ import annotations

from benchmarks.harness import Result
from benchmarks.report import markdown


def _rows() -> list[Result]:
    base = Result("relative", "page", "toolbar alone", [0.010, 0.012], baseline=True, ratio=1.0)
    ours = Result("relative", "page", "ours", [0.015, 0.018], goal="≤ x2", ratio=1.5)
    ours.extra["met"] = True
    absolute = Result("absolute", "sqlite", "one suggestion", [0.030], goal="≤ 20 ms")
    absolute.extra.update(met=False, no_ratio="an absolute cost: the goal is in ms")
    unexplained = Result("absolute", "sqlite", "another", [0.001])
    return [base, ours, absolute, unexplained]


def test_rows_without_a_baseline_say_why_instead_of_xnan() -> None:
    table = markdown(_rows(), quick=True)
    assert "nan" not in table
    assert "| x1.00 |" in table and "| x1.50 | ≤ x2 | yes |" in table
    assert "| 30.0 | 30.0–30.0 | — (an absolute cost: the goal is in ms) | ≤ 20 ms | no |" in table
    assert "| — (no baseline to compare with) |" in table
