"""What each panel names on Wagtail's page explorer (run by ``test_wagtail.py`` with this
folder's settings, in a pytest process of its own).

The explorer's URL resolves to ``PageViewSetRegistry.as_view.<locals>.view_router``, which
hands the request to the page type's ``ExplorableIndexView``: the panels must name (and line
memory must trace) that handler, and blame no query on the project middleware.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from wagtail.models import Page

from tests.conftest import run_with_toolbar
from tests.real_apps.conftest import HERE

PAGES = 300


@pytest.fixture
def explorer(db: Any, client: Any) -> Any:
    root = Page.get_first_root_node()
    home = root.add_child(instance=Page(title="Home", slug="home-perf"))
    for i in range(PAGES):
        home.add_child(instance=Page(title=f"Page {i}", slug=f"page-{i}"))
    client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))
    perf = {"PROJECT_PATHS": [str(HERE / "project")], "LINE_MEMORY": {"ENABLED_BY_DEFAULT": True}}
    with override_settings(DEBUG_TOOLBAR_PERF=perf):
        yield client, home


def test_explorer_names_and_traces_the_real_handler(explorer: Any) -> None:
    client, home = explorer
    run = run_with_toolbar(client, f"/cms/pages/{home.pk}/")
    assert run.response.status_code == 200
    label = run.stats("LineMemoryPanel")["target"]["label"]
    assert label.startswith("wagtail.admin.views.pages.listing.ExplorableIndexView.get (via ")
    assert "view_router" in label
    functions = run.record("LineMemoryPanel")["functions"]
    traced = {f["label"]: f for f in functions}
    handler = traced["get (listing.py)"]
    assert handler["name"] == "get"
    assert handler["file"].endswith("wagtail/admin/views/pages/listing.py")
    assert handler["calls"] == 1
    assert handler["why"] == "handler, followed from view_router"
    assert len(handler["lines"]) > 5  # its lines ran and were measured


def test_explorer_blames_no_query_on_the_middleware(explorer: Any) -> None:
    client, home = explorer
    run = run_with_toolbar(client, f"/cms/pages/{home.pk}/")
    shapes = run.record("ExplainPanel")["shapes"]
    assert shapes
    for shape in shapes:
        for line in shape["lines"]:
            assert "middleware" not in line["file"], (line, shape["sql"])
            assert "/django/db/" not in line["file"], line
    models = run.record("ModelInstancesPanel")["models"]
    pages = {m["label"]: m for m in models}["wagtailcore.Page"]
    assert pages["count"] >= 50  # one page of the listing (50 rows) and its ancestors
    for site in pages["sites"]:
        where = site["where"]
        assert "middleware" not in where["file"], site
        assert "/django/db/" not in where["file"], site


def test_explorer_profile_includes_the_template_rendering(explorer: Any) -> None:
    client, home = explorer
    run = run_with_toolbar(client, f"/cms/pages/{home.pk}/")
    record = run.record("SamplingProfilerPanel")
    assert record["scope"] == "view"
    functions = record["functions"]
    top = {functions[n[1]][0] for n in record["nodes"] if n[0] == 0}
    assert "SimpleTemplateResponse.render" in top, top
    assert any("TemplateResponse" in note for note in record["notes"]), record["notes"]
    assert any(
        "view_router handed the request to "
        "wagtail.admin.views.pages.listing.ExplorableIndexView.get" in note
        for note in record["notes"]
    ), record["notes"]
