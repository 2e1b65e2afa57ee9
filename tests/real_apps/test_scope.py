"""The view's own work includes the TemplateResponse it returned, rendered by Django after
the view returns: generic views and the admin, in every panel that has a scope."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from debug_toolbar_perf.scope import deferred_render_codes
from tests.conftest import qual, run_with_toolbar
from tests.real_apps.conftest import perf

SAMPLING = "SamplingProfilerPanel"


def hot_names(record: dict[str, Any]) -> dict[str, float]:
    """Function name (no class) -> share of the in-scope samples under it."""
    functions = record["functions"]
    return {functions[h[0]][0].rsplit(".", 1)[-1]: h[2] / record["samples"] for h in record["hot"]}


@pytest.mark.parametrize("path", ["/books/", "/books/fn/"])
def test_template_rendering_is_in_the_view_scope(library_site: Any, path: str) -> None:
    run = run_with_toolbar(library_site, path)
    assert run.response.status_code == 200
    record = run.record(SAMPLING)
    assert record["scope"] == "view"
    # 40 rows x 8 ms of slow_blurb, called from the template after the view returned.
    assert hot_names(record).get("slow_blurb", 0) > 0.4, hot_names(record)
    functions = record["functions"]
    top = {functions[n[1]][0] for n in record["nodes"] if n[0] == 0}
    assert qual("SimpleTemplateResponse.render") in top, top
    assert any("library/book_list.html" in note for note in record["notes"]), record["notes"]


def test_middleware_scope_is_unchanged(library_site: Any) -> None:
    with override_settings(DEBUG_TOOLBAR_PERF=perf(SCOPE="middleware")):
        run = run_with_toolbar(library_site, "/books/")
    record = run.record(SAMPLING)
    assert record["scope"] == "middleware"
    assert record["root_label"] == "middleware chain"
    assert hot_names(record).get("slow_blurb", 0) > 0.4
    assert not any("TemplateResponse" in note for note in record["notes"])


def test_a_plain_response_says_nothing_of_rendering(library_site: Any) -> None:
    run = run_with_toolbar(library_site, "/admin/logout/", method="post")
    record = run.record(SAMPLING)
    assert not any("library/" in note for note in record["notes"])


def test_template_response_hooks_of_the_middleware_are_in_scope() -> None:
    hooked = "tests.real_apps.project.middleware.TemplateResponseHookMiddleware"
    from tests.real_apps.project.middleware import TemplateResponseHookMiddleware

    with override_settings(MIDDLEWARE=[hooked]):
        codes = deferred_render_codes()
        assert TemplateResponseHookMiddleware.process_template_response.__code__ in codes
    assert TemplateResponseHookMiddleware.process_template_response.__code__ not in (
        deferred_render_codes()
    )


def test_instances_and_explain_count_what_the_template_did(library_site: Any) -> None:
    """The 40 authors the template follows a foreign key to, one query each, after the view
    returned, are counted by the instances panel and captured by the Explain panel."""
    run = run_with_toolbar(library_site, "/books/")
    models = {m["label"]: m["count"] for m in run.record("ModelInstancesPanel")["models"]}
    assert models["library.Book"] == 40
    assert models["library.Author"] == 40
    shapes = run.record("ExplainPanel")["shapes"]
    authors = [s for s in shapes if "library_author" in s["sql"]]
    assert [s["count"] for s in authors] == [40]


def test_template_frames_are_named_in_the_profile(library_site: Any) -> None:
    """The thread sampler names the template node being rendered, not render_annotated."""
    with override_settings(DEBUG_TOOLBAR_PERF=perf(SAMPLING={"ENGINE": "thread"})):
        run = run_with_toolbar(library_site, "/books/")
    record = run.record(SAMPLING)
    functions = record["functions"]
    names = {functions[h[0]][0]: h[2] / record["samples"] for h in record["hot"]}
    frame = "book_list.html:3 {{ book.slow_blurb }}"
    assert names.get(frame, 0) > 0.4, names
    assert names.get("book_list.html:2 {% for book in object_list %}", 0) > 0.4, names
    # (On 3.10 a bare "render" names every template class's method: only the node's is checked.)
    folded = {qual("Node.render_annotated"), "NodeList.render"}
    assert not any(f[0] in folded for f in functions)
    (row,) = [f for f in functions if f[0] == frame]
    assert row[1].endswith("library/templates/library/book_list.html")
    assert row[2] == 3
    assert row[3] is True  # a project template
    # The tree goes through the template node to the model method it called.
    by_index = {i: f[0] for i, f in enumerate(functions)}
    parents = {}
    for i, (parent, fi, _total, _self) in enumerate(record["nodes"]):
        parents[i] = (parent, by_index.get(fi))
    slow = [i for i, (_p, name) in parents.items() if name == qual("Book.slow_blurb")]
    assert slow
    for i in slow:
        chain = []
        while i > 0:
            i, name = parents[i][0], parents[i][1]
            chain.append(name)
        assert frame in chain, chain
