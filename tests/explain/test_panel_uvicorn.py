"""ExplainPanel on a real ASGI server (uvicorn, the demo site, a seeded SQLite file).

Under a server, Django runs each request in its own ``ThreadSensitiveContext``: the sync
view and the async ORM calls of one request run in that request's executor thread, other
requests' in theirs, all at once. Every SELECT shape of every page must be explained (on
that thread's connection, before the toolbar takes over in the event loop), and the EXPLAIN
ANALYZE endpoint must answer when served by ASGI too.
"""

from __future__ import annotations

import html as html_lib
import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.test_servers import (
    BIN,
    free_port,
    get,
    panel_html,
    seed_database,
    start,
    stop,
)

pytestmark = pytest.mark.slow

#: page -> the tables its statements touch
PAGES = {
    "/async/orm/": {"review"},
    "/products/n-plus-one/": {"product", "category", "review"},
    "/categories/": {"category"},
    "/products/published/": {"product"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo (with the reliability probes) under uvicorn, on a seeded SQLite file."""
    if not (BIN / "uvicorn").exists():
        pytest.skip("uvicorn is not installed")
    tmp = tmp_path_factory.mktemp("explain-uvicorn")
    port = free_port()
    proc = start("uvicorn", seed_database(tmp / "demo.sqlite3"), port, tmp / "uvicorn.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _explain_html(base: str, page: str) -> str:
    status, body = get(base + page)
    assert status == 200, page
    match = re.search(rb'data-request-id="([0-9a-f]+)"', body)
    assert match, f"no toolbar on {page}"
    return panel_html(base, match.group(1).decode(), "ExplainPanel")


def _problems(page: str, html: str) -> list[str]:
    found = []
    plans = html.count("djdt-perf-plan-box")
    if not plans:
        found.append(f"{page}: no plan")
    for marker in ("Not explained:", "EXPLAIN failed", "djdt-perf-warning", "djdt-perf-error"):
        if marker in html:
            found.append(f"{page}: {marker}")
    tables = set(re.findall(r"shop_(category|product|review)\b", html))
    if tables != PAGES[page]:
        found.append(f"{page}: tables {sorted(tables)} != {sorted(PAGES[page])}")
    return found


def test_every_shape_explained_under_concurrent_asgi_requests(server: str) -> None:
    pages = list(PAGES) * 6
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda p: (p, _explain_html(server, p)), pages))
    problems = [problem for page, html in results for problem in _problems(page, html)]
    assert not problems, problems[:10]


def test_analyze_endpoint_served_by_asgi(server: str) -> None:
    """As the browser does it: a CSRF token from the toolbar's endpoint, the signed value once."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(server + "/products/published/", timeout=60) as r:
        match = re.search(rb'data-request-id="([0-9a-f]+)"', r.read())
    assert match, "no toolbar"
    html = panel_html(server, match.group(1).decode(), "ExplainPanel")
    found = re.search(r'data-signed="([^"]+)" data-url="([^"]+)"', html)
    assert found, "no ANALYZE button"
    signed, url = html_lib.unescape(found.group(1)), html_lib.unescape(found.group(2))
    with opener.open(server + "/__debug__/perf/csrf/", timeout=60) as r:
        token = json.loads(r.read())["token"]
    assert any(c.name == "csrftoken" for c in jar)  # set by the toolbar's endpoint
    data = urllib.parse.urlencode({"signed": signed}).encode()

    def post(headers: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(server + url, data, headers=headers)
        try:
            with opener.open(request, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    assert post({})[0] == 403  # no CSRF token
    status, body = post({"X-CSRFToken": token})
    assert status == 200, body
    content = json.loads(body)["content"]
    assert "EXPLAIN ANALYZE" in content and "actual" in content
    assert post({"X-CSRFToken": token})[0] == 410  # replayed
