"""The line memory Δ: per line, exact runs and measured memory past the noise bounds."""

from __future__ import annotations

import pytest
from django.test import Client

from debug_toolbar_perf.line_memory.diff import diff, memory_changed
from tests.conftest import run_with_toolbar

PANEL = "LineMemoryPanel"


def test_noise_bounds() -> None:
    assert not memory_changed(0.0, 0.6)  # under 1 MiB
    assert not memory_changed(40.0, 30.0)  # 25% of the larger side
    assert memory_changed(45.8, 0.0)
    assert memory_changed(0.0, -2.0)


@pytest.mark.django_db
def test_memory_page_against_the_hot_loop_and_itself(client: Client) -> None:
    memory = run_with_toolbar(client, "/memory/").record(PANEL)
    loop = run_with_toolbar(client, "/hot-loop/").record(PANEL)
    made = diff(memory, loop)
    assert made.significant
    assert any(
        row[0].startswith("memory L") and "big_list = [0] * 6_000_000" in row[0]
        for row in made.rows
    )
    same = diff(memory, memory)
    assert not same.significant and not same.notes


@pytest.mark.django_db
def test_reload_shows_a_delta_block(client: Client) -> None:
    run_with_toolbar(client, "/hot-loop/")
    second = run_with_toolbar(client, "/hot-loop/")
    html = second.content(PANEL)
    assert "the previous request of this view" in html
    assert "peak above start" in html
    assert second.stats(PANEL)["baseline"] is not None


@pytest.mark.django_db
def test_an_edit_above_the_function_is_no_change(client: Client) -> None:
    """Lines are matched by their text: three lines inserted above move every number."""
    import copy

    from debug_toolbar_perf.line_memory.record import LINE

    record = run_with_toolbar(client, "/hot-loop/").record(PANEL)
    moved = copy.deepcopy(record)
    for function in moved["functions"]:
        function["first_line"] += 3
        for row in function["lines"]:
            row[LINE] += 3
    made = diff(moved, record)
    assert not made.notes
    assert all(row[-1] != "" for row in made.rows[1:])  # whatever moved is within noise
