"""Call-tree building, scoping, pruning and the findings read from a stored record."""

from __future__ import annotations

import json

from debug_toolbar_perf.sampling import calltree
from debug_toolbar_perf.sampling import report as sampling_report
from debug_toolbar_perf.sampling.session import RawProfile

MW = ("middleware", "/lib/mw.py", 5)
PR = ("PerfPanel.process_request", "/pkg/base.py", 118)
V = ("view", "/p/views.py", 1)
HOT = ("hot", "/p/views.py", 30)
LIB = ("render", "/lib/template.py", 99)


def project(filename: str) -> bool:
    return filename.startswith("/p/")


def test_scope_to_view_counts_outside():
    stacks = {((MW, PR, MW, V, HOT), 31): 7, ((MW, PR, MW, V, LIB), 100): 3, ((MW, PR, MW), 9): 2}
    kept, outside = calltree.scope_stacks(
        stacks, view_code={("/p/views.py", 1)}, anchor=None, anchor_depth=None
    )
    assert kept == {((V, HOT), 31): 7, ((V, LIB), 100): 3}
    assert outside == 2


def test_scope_to_middleware_cuts_below_the_anchor():
    stacks = {((MW, PR, MW, V, HOT), 31): 7, ((MW, PR), 120): 1}
    kept, outside = calltree.scope_stacks(
        stacks, view_code=None, anchor=("/pkg/base.py", 118), anchor_depth=1
    )
    assert kept == {((MW, V, HOT), 31): 7}
    assert outside == 1


def test_tree_totals_self_and_hot_functions():
    stacks = {((V, HOT), 31): 7, ((V, LIB), 100): 3, ((V, HOT, HOT), 32): 2}
    tree = calltree.build_tree(stacks, max_nodes=100, is_project=project)
    fns = tree["functions"]
    named = {fns[n[1]][0] if n[1] >= 0 else "ROOT": (n[2], n[3]) for n in tree["nodes"][:3]}
    assert named["ROOT"] == (12, 0)
    assert named["view"] == (12, 0)
    hot = {fns[f][0]: (s, t) for f, s, t in tree["hot"]}
    assert hot["hot"] == (9, 9)  # recursion counted once in total
    assert hot["render"] == (3, 3)
    assert tree["pruned"]["nodes"] == 0
    lines = {(fns[f][0], line): w for f, line, w in tree["lines"]}
    assert lines[("hot", 31)] == 7


def test_pruning_keeps_heaviest_and_says_what_went():
    stacks = {((V, (f"f{i}", "/p/x.py", i)), 1): i + 1 for i in range(20)}
    tree = calltree.build_tree(stacks, max_nodes=7, is_project=project)
    assert len(tree["nodes"]) == 7
    kept = {tree["functions"][n[1]][0] for n in tree["nodes"][2:]}
    assert kept == {"f19", "f18", "f17", "f16", "f15"}
    assert tree["pruned"]["nodes"] == 15
    assert tree["pruned"]["samples"] == sum(range(1, 16))
    # every parent index precedes its child (preorder)
    assert all(n[0] < i for i, n in enumerate(tree["nodes"]) if i)


def make(stacks, **kw):
    raw = RawProfile("thread", "wall", 1.0, duration_s=0.1, stacks=stacks)
    return calltree.make_record(
        raw,
        engine_reason="test",
        scope="view",
        view_code={("/p/views.py", 1)},
        view_label="views.view",
        anchor=None,
        anchor_depth=None,
        max_nodes=100,
        is_project=project,
        **kw,
    )


def test_record_is_json_native_and_headline_names_top_project_function():
    record = make({((MW, V, HOT), 31): 70, ((MW, V, LIB), 100): 30, ((MW,), 1): 5})
    assert json.loads(json.dumps(record)) == record
    assert record["samples"] == 100 and record["outside"] == 5
    assert record["rate_hz"] == 1050.0
    assert sampling_report.headline(record) == "hot 70% · 100 samples"
    split = sampling_report.project_split(record)
    assert (split["project_pct"], split["library_pct"]) == (70.0, 30.0)
    by_total = sampling_report.hot_functions(record, "total")
    assert by_total[0]["name"] == "view" and by_total[0]["total_pct"] == 100.0
    assert sampling_report.thinness(record, 50) is None


def test_thin_and_zero_profiles():
    thin = sampling_report.thinness(make({((V, HOT), 3): 10}), 50)
    assert thin and not thin["zero"] and "Only 10 samples" in thin["message"]
    assert any("INTERVAL_MS" in tip for tip in thin["tips"])
    zero_record = make({((MW,), 3): 4})
    zero = sampling_report.thinness(zero_record, 50)
    assert zero and zero["zero"]
    assert any("middleware" in tip for tip in zero["tips"])
    # True for this request: 4 samples were taken, all outside the view's scope.
    assert zero["message"].startswith("No samples in the view's scope: all 4 samples")
    assert "first tick" not in zero["message"]
    assert sampling_report.headline(zero_record) == "no samples"


def test_own_hooks_counts_the_hooks_not_the_work_they_forward():
    """Samples in this package's hooks (other panels measuring the view) are told apart: a
    hook's own callees count as the hook's; the query Explain's execute wrapper runs and the
    receivers the instances hook forwards ``post_init`` to are the user's."""
    pkg = "/site/debug_toolbar_perf/"
    record = {
        "samples": 100,
        "functions": [
            ["view", "/app/views.py", 1, True],
            ["Model.__init__", "/site/django/db/models/base.py", 1, False],
            ["_send", pkg + "instances/collector.py", 1, False],
            ["Collector.on_instance", pkg + "instances/collector.py", 9, False],
            ["walk_stack", "/usr/lib/python3/traceback.py", 1, False],
            ["_dispatch", pkg + "explain/capture.py", 1, False],
            ["execute", "/site/django/db/backends/utils.py", 1, False],
            ["Signal.send", "/site/django/dispatch/dispatcher.py", 1, False],
        ],
        "nodes": [
            [-1, -1, 100, 0],
            [0, 0, 100, 30],  # view: 30 self
            [1, 1, 40, 10],  # Model.__init__: 10 self
            [2, 2, 30, 5],  # _send (ours): 5 self
            [3, 3, 15, 10],  # on_instance (ours): 10 self
            [4, 4, 5, 5],  # traceback under on_instance: the hook's cost, 5
            [3, 7, 10, 10],  # post_init receivers _send forwards to: the user's, 10
            [1, 5, 30, 4],  # Explain's wrapper: 4 self
            [7, 6, 26, 26],  # the query it runs: the user's
        ],
    }
    hooks = sampling_report.own_hooks(record, package_dir=pkg)
    assert hooks["weight"] == 24 and hooks["pct"] == 24.0
    # The hot lists are the user's: our hooks and what they call for themselves are left out.
    record["hot"] = [[fi, w, w] for fi, w in enumerate([30, 10, 5, 10, 5, 4, 26, 10])]
    record["lines"] = [[6, 12, 26], [3, 40, 10], [4, 7, 5], [0, 3, 30], [7, 8, 10]]
    hot = sampling_report.hot_functions(record, "self", package_dir=pkg)
    assert [(r["name"], r["self"]) for r in hot] == [
        ("view", 30),
        ("execute", 26),
        ("Model.__init__", 10),
        ("Signal.send", 10),
    ]
    lines = sampling_report.hot_lines(record, package_dir=pkg)
    assert [(r["name"], r["line"]) for r in lines] == [
        ("view", 3),
        ("execute", 12),
        ("Signal.send", 8),
    ]
    assert hooks["panels"] == [
        {"panel": "Model instances", "pct": 20.0},
        {"panel": "Explain", "pct": 4.0},
    ]
    assert sampling_report.own_hooks({"samples": 0, "functions": [], "nodes": []})["pct"] == 0.0
