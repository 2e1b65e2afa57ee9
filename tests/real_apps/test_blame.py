"""Blame is the line a user would change: the template line of an N+1 issued while
rendering, the ModelAdmin method of the admin changelist, the admin's own code when no
project code is on the path; never the project middleware that wraps every view."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from tests.conftest import run_with_toolbar
from tests.real_apps.conftest import HERE, perf

TEMPLATE = "library/book_list.html"
TEMPLATE_LINE = 3  # <li>{{ book.title }} by {{ book.author.name }}: ...


def author_sites(run: Any) -> list[dict[str, Any]]:
    models = {m["label"]: m for m in run.record("ModelInstancesPanel")["models"]}
    return models["library.Author"]["sites"]


def author_lines(run: Any) -> list[dict[str, Any]]:
    shapes = run.record("ExplainPanel")["shapes"]
    (shape,) = [s for s in shapes if 'FROM "library_author"' in s["sql"]]
    return shape["lines"]


@pytest.mark.parametrize("path", ["/books/", "/books/fn/"])
def test_n_plus_one_in_a_template_is_blamed_on_its_line(library_site: Any, path: str) -> None:
    run = run_with_toolbar(library_site, path)
    (site,) = author_sites(run)
    where = site["where"]
    assert where["file"].endswith(TEMPLATE), where
    assert where["line"] == TEMPLATE_LINE
    assert where["function"] == "{{ book.author.name }}"
    assert "{{ book.author.name }}" in where["code"]  # the template's own source line
    assert where["project"] is True
    assert site["count"] == 40
    (line,) = author_lines(run)
    assert (Path(line["file"]).name, line["line"], line["count"]) == ("book_list.html", 3, 40)
    assert line["function"] == "{{ book.author.name }}"


def test_admin_changelist_blames_the_list_display_method(library_site: Any) -> None:
    run = run_with_toolbar(library_site, "/admin/library/book/?q=Book&published__exact=1")
    assert run.response.status_code == 200
    (site,) = author_sites(run)
    where = site["where"]
    assert where["file"] == str(HERE / "library" / "admin.py")
    assert where["function"] == "author_name"
    assert "obj.author.name" in where["code"]
    assert site["count"] == 26  # the published books (i % 3 != 0) of 40 matching "Book"
    (line,) = author_lines(run)
    assert (line["file"], line["function"], line["count"]) == (where["file"], "author_name", 26)


def test_admin_without_project_code_is_blamed_on_the_admin_not_the_middleware(
    library_site: Any,
) -> None:
    """Only the middleware is project code: the admin's own code is the site."""
    with override_settings(DEBUG_TOOLBAR_PERF=perf(PROJECT_PATHS=[str(HERE / "project")])):
        run = run_with_toolbar(library_site, "/admin/library/book/")
    sites = author_sites(run)
    lines = author_lines(run)
    for where in [s["where"] for s in sites] + lines:
        assert "middleware" not in where["file"], where
        assert "/django/db/" not in where["file"], where
        assert "/django/contrib/admin/" in where["file"], where


def test_middleware_that_issues_work_itself_is_blamed(library_site: Any) -> None:
    """The rule stops at the view's scope only for work inside it: what the project
    middleware does itself, before the view, stays on the middleware's line."""
    from tests.real_apps.project import middleware

    with override_settings(
        MIDDLEWARE=[
            "debug_toolbar.middleware.DebugToolbarMiddleware",
            "tests.real_apps.project.middleware.CountingMiddleware",
            *settings.MIDDLEWARE[1:],
        ]
    ):
        run = run_with_toolbar(library_site, "/books/")
    models = {m["label"]: m for m in run.record("ModelInstancesPanel")["models"]}
    (first,) = [s for s in models["library.Author"]["sites"] if s["count"] == 1]
    assert first["where"]["file"] == middleware.__file__
    assert first["where"]["function"] == "__call__"


def n_plus_one_fixes(run: Any) -> tuple[list[str], list[tuple[str, str | None]]]:
    """The N+1 advice on Author: the instances panel's fixes, Explain's (text, ORM code)."""
    instances = run.live_panel("ModelInstancesPanel").report(run.stats("ModelInstancesPanel"))
    inst = [
        f["fix"]
        for f in instances["findings"]
        if f["kind"] == "n_plus_one" and f["model"] == "library.Author"
    ]
    explain = run.live_panel("ExplainPanel").report(run.stats("ExplainPanel"))
    expl = [
        (f["detail"], f["orm"])
        for s in explain.shapes
        if 'FROM "library_author"' in s["sql"]
        for f in s["findings"]
        if f["code"] == "n_plus_one"
    ]
    return inst, expl


def test_admin_changelist_advice_is_list_select_related_and_it_fixes_the_n_plus_one(
    library_site: Any,
) -> None:
    """A ModelAdmin author does not write the changelist's queryset: both panels advise
    ``list_select_related`` on the admin, and that setting, applied, removes the N+1."""
    from tests.real_apps.library.admin import BookAdmin

    run = run_with_toolbar(library_site, "/admin/library/book/")
    inst, expl = n_plus_one_fixes(run)
    code = 'list_select_related = ["author"]'
    assert inst == [f"set {code} on BookAdmin (the changelist's query)"], inst
    ((text, orm),) = expl
    assert orm == code and "select_related(" not in text, text
    # The path is shown relative to the nearest sys.path entry (which one depends on the run).
    assert re.match(r"One query per parent row at (\S+/)?library/admin\.py:19\. ", text), text
    assert text.endswith(
        f"Each Book loads its author (Author) separately: set {code} on BookAdmin "
        "(the changelist's query)."
    )
    authors = run.record("ModelInstancesPanel")["models"]
    assert next(m for m in authors if m["label"] == "library.Author")["count"] > 2

    BookAdmin.list_select_related = ["author"]  # what the advice says, as the user would
    try:
        fixed = run_with_toolbar(library_site, "/admin/library/book/")
    finally:
        BookAdmin.list_select_related = False
    assert n_plus_one_fixes(fixed) == ([], [])
    shapes = fixed.record("ExplainPanel")["shapes"]
    assert not [s for s in shapes if s["sql"].lstrip().startswith('SELECT "library_author"')]


def test_the_same_n_plus_one_outside_the_admin_keeps_the_queryset_advice(
    library_site: Any,
) -> None:
    run = run_with_toolbar(library_site, "/books/")
    inst, expl = n_plus_one_fixes(run)
    assert inst == ["add .select_related('author') to the parent queryset"], inst
    ((text, orm),) = expl
    assert orm == 'Book.objects....select_related("author")', orm
    assert 'add .select_related("author") to the Book queryset.' in text, text
