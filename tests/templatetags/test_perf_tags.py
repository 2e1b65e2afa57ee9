"""The template helpers: short paths with the full one on hover, counts with their noun."""

from __future__ import annotations

import django.db.models.base
from django.template import Context, Template


def render(source: str, **context: object) -> str:
    return Template("{% load perf_tags %}" + source).render(Context(context))


def test_where_shows_the_short_path_and_the_full_one_on_hover() -> None:
    full = django.db.models.base.__file__
    html = render("{% where f 584 %}", f=full)
    assert html == (
        f'<span class="djdt-perf-where" title="{full}:584">'
        "django/<wbr>db/<wbr>models/<wbr>base.py:584</span>"
    )


def test_where_escapes_and_keeps_names_without_a_file() -> None:
    html = render("{% where f '' %}", f="<frozen posixpath>")
    assert html == (
        '<span class="djdt-perf-where" title="&lt;frozen posixpath&gt;">'
        "&lt;frozen posixpath&gt;</span>"
    )


def test_count_plural_and_thousands() -> None:
    out = render(
        '{{ 1|count:"shape" }}|{{ 2|count:"shape" }}|{{ 100000|count:"row" }}|'
        '{{ 3|plural:"query" }}|{{ 100000|thousands }}|{{ 2.5|thousands }}|{{ "n/a"|thousands }}'
    )
    assert out == "1 shape|2 shapes|100,000 rows|queries|100,000|2.5|n/a"
