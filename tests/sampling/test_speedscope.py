"""The speedscope and collapsed-stack exports, validated against their formats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from debug_toolbar_perf.sampling.calltree import build_tree
from debug_toolbar_perf.sampling.collapsed import to_collapsed
from debug_toolbar_perf.sampling.speedscope import dumps, to_speedscope

SCHEMA = json.loads(Path(__file__).with_name("speedscope_schema.json").read_text())

V = ("view", "/p/views.py", 1)
A = ("a", "/p/a.py", 10)
B = ("b;odd name", "/lib/b.py", 20)


def record(max_nodes: int = 100) -> dict:
    stacks = {((V, A), 11): 6, ((V, A, B), 21): 3, ((V,), 2): 1}
    tree = build_tree(stacks, max_nodes=max_nodes, is_project=lambda f: f.startswith("/p/"))
    return {"samples": 10, "outside": 0, "duration_ms": 20.0, **tree}


@pytest.mark.parametrize("max_nodes", [100, 3])
def test_speedscope_validates_against_schema(max_nodes):
    doc = json.loads(dumps(record(max_nodes), "GET /x/"))
    jsonschema.validate(doc, SCHEMA)
    profile = doc["profiles"][0]
    assert len(profile["samples"]) == len(profile["weights"])
    assert profile["endValue"] == pytest.approx(20.0)  # 10 samples x 2 ms
    frames = doc["shared"]["frames"]
    assert all(0 <= i < len(frames) for s in profile["samples"] for i in s)


def test_speedscope_weights_follow_the_tree():
    doc = to_speedscope(record())
    frames = [f["name"] for f in doc["shared"]["frames"]]
    profile = doc["profiles"][0]
    by_stack = {
        tuple(frames[i] for i in s): w
        for s, w in zip(profile["samples"], profile["weights"], strict=True)
    }
    assert by_stack == {("view", "a"): 12.0, ("view", "a", "b;odd name"): 6.0, ("view",): 2.0}


def test_schema_rejects_a_broken_file():
    doc = to_speedscope(record())
    del doc["profiles"][0]["weights"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)


def test_collapsed_stacks_format():
    text = to_collapsed(record())
    lines = text.splitlines()
    assert all(re.fullmatch(r"[^;]+(;[^;]+)* \d+", line) for line in lines), lines
    assert "view (views.py:1);a (a.py:10) 6" in lines
    assert "view (views.py:1);a (a.py:10);b:odd name (b.py:20) 3" in lines
    assert sum(int(line.rsplit(" ", 1)[1]) for line in lines) == 10


def test_pruned_samples_are_kept_in_exports():
    text = to_collapsed(record(max_nodes=2))  # root + view only
    assert "view (views.py:1);(pruned) 9" in text.splitlines()
