"""The blame rule's parts: the app that owns a view, and a template node's line."""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any

from django.template import Context, Engine

from debug_toolbar_perf.blame import owner_of_module, template_where


def test_owner_of_a_view_module() -> None:
    sep = os.sep
    assert (
        owner_of_module("django.contrib.admin.options") == f"{sep}django{sep}contrib{sep}admin{sep}"
    )
    assert owner_of_module("wagtail.admin.views.pages.listing") == f"{sep}wagtail{sep}"
    assert owner_of_module("shop.views") == f"{sep}shop{sep}"
    assert owner_of_module(None) is None


def test_template_node_frames_name_their_line_and_tag() -> None:
    seen: list[Any] = []

    def probe() -> str:
        f: FrameType | None = sys._getframe(1)
        while f is not None:
            where = template_where(f)
            if where is not None:
                seen.append(where)
            f = f.f_back
        return "x"

    source = "<p>\n{% for i in items %}\n{{ probe }}\n{% endfor %}</p>"
    Engine().from_string(source).render(Context({"items": [1], "probe": probe}))
    assert [w[1:] for w in seen] == [(3, "{{ probe }}"), (2, "{% for i in items %}")]
    assert seen[0][0] == "<unknown source>"
