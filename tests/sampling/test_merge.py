"""Merging stored sampling records: call paths matched by function, weights added."""

from __future__ import annotations

import pytest
from django.test import Client

from debug_toolbar_perf.sampling.calltree import iter_paths
from debug_toolbar_perf.sampling.merge import function_key, merge_records
from tests.conftest import run_with_toolbar


def paths(record):  # type: ignore[no-untyped-def]
    """{call path by function key: self weight} of a record."""
    functions = record["functions"]
    out: dict[tuple, float] = {}
    for path, weight in iter_paths(record):
        key = tuple(function_key(functions[i]) if i >= 0 else ("(pruned)",) for i in path)
        out[key] = out.get(key, 0.0) + weight
    return out


@pytest.mark.django_db
def test_merging_a_record_with_itself_doubles_every_path(client: Client) -> None:
    record = run_with_toolbar(client, "/cpu/?n=3000").record("SamplingProfilerPanel")
    merged = merge_records([record, record])
    assert merged["samples"] == pytest.approx(2 * record["samples"])
    single, double = paths(record), paths(merged)
    assert set(single) == set(double)
    for key, weight in single.items():
        assert double[key] == pytest.approx(2 * weight)
    hot = {function_key(merged["functions"][f]): (s, t) for f, s, t in merged["hot"]}
    for f, self_w, total_w in record["hot"]:
        key = function_key(record["functions"][f])
        assert hot[key] == (pytest.approx(2 * self_w), pytest.approx(2 * total_w))


@pytest.mark.django_db
def test_merging_two_views_keeps_both(client: Client) -> None:
    cpu = run_with_toolbar(client, "/cpu/?n=3000").record("SamplingProfilerPanel")
    loop = run_with_toolbar(client, "/hot-loop/").record("SamplingProfilerPanel")
    merged = merge_records([cpu, loop])
    names = {fn[0] for fn in merged["functions"]}
    assert {"slow_primes", "hot_loop"} <= names
    assert merged["nodes"][0][2] == pytest.approx(cpu["samples"] + loop["samples"])
    assert merged["duration_ms"] == pytest.approx(cpu["duration_ms"] + loop["duration_ms"])
