"""The demo's home page marks the pages the sampling profiler refuses on this interpreter."""

from __future__ import annotations

import re
import sys

from django.test import Client


def test_async_pages_are_marked_where_the_sampler_refuses_them(client: Client, db: None) -> None:
    html = client.get("/").content.decode()
    items = re.findall(r"<li>(.*?)</li>", html, re.S)
    marked = {re.search(r'href="([^"]+)"', item).group(1) for item in items if "3.12+" in item}  # type: ignore[union-attr]
    if sys.version_info[:2] == (3, 11):
        assert marked == {"/async/cpu/", "/async/orm/", "/async/alloc/"}
        assert f"this demo runs Python {sys.version_info.major}.{sys.version_info.minor}." in html
    else:
        assert marked == set()
