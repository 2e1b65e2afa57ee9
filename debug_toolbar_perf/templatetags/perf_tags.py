"""Template helpers every panel uses: where code is (short, the full path on hover) and
numbers with the noun agreeing (``{{ n|count:"row" }}`` -> ``100,000 rows``)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from .. import text
from ..scope import short_path

register = template.Library()


@register.simple_tag
def where(filename: str, line: int | str | None = None) -> SafeString:
    """``django/db/models/base.py:584``, with the full path in the title (hover); a narrow
    column may break it after a slash (``<wbr>``), never inside a name."""
    suffix = f":{line}" if line not in (None, "") else ""
    parts = short_path(filename).split("/")
    short = format_html_join(mark_safe("/<wbr>"), "{}", ((p,) for p in parts))
    return format_html(
        '<span class="djdt-perf-where" title="{}">{}{}</span>', filename + suffix, short, suffix
    )


@register.filter(name="count")
def count_filter(n: float, noun: str) -> str:
    """``{{ n|count:"row" }}``: ``1 row``, ``100,000 rows``."""
    return text.count(n, noun)


@register.filter(name="plural")
def plural_filter(n: float, noun: str) -> str:
    """``{{ n|plural:"shape" }}``: the noun alone, agreeing with ``n``."""
    return text.plural(n, noun)


@register.filter
def thousands(n: Any) -> str:
    """``{{ n|thousands }}``: ``100,000``; what is not a number is shown as it is."""
    try:
        number = float(n)
    except (TypeError, ValueError):
        return str(n)
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.1f}"
