"""Real servers on 127.0.0.1, 16 concurrent clients, all four panels on.

Each server runs the demo settings in a subprocess on a temporary seeded SQLite
file. Every client fetches a demo page, reads the toolbar's request id from it,
fetches each perf panel through ``/__debug__/render_panel/`` and checks it holds
only that page's functions, models and tables. Then: no errors, no hangs, the
process is alive and serves normal panels, and RSS stays flat over 1,000 requests
(the toolbar keeps only RESULTS_CACHE_SIZE requests).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
BIN = Path(sys.executable).parent
PANELS = ("SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel")

#: page -> (view function roots in shop/views.py, tables, models) it may show.
PAGES: dict[str, tuple[set[str], set[str], set[str]]] = {
    "/cpu/?n=1500": ({"cpu", "slow_primes"}, set(), set()),
    "/products/n-plus-one/": (
        {"n_plus_one"},
        {"product", "category", "review"},
        {"Product", "Category"},
    ),
    "/products/fixed/": ({"fixed"}, {"product", "category", "review"}, {"Product", "Category", "Review"}),  # noqa: E501
    "/reviews/summary/": ({"ReviewSummaryView"}, {"review"}, {"Review"}),
    "/products/popular/": ({"sorted_products"}, {"product"}, set()),
    "/categories/": ({"categories"}, {"category"}, set()),
    "/products/published/": ({"unindexed"}, {"product"}, {"Product"}),
}  # fmt: skip
CHEAP = ["/categories/", "/products/popular/", "/products/n-plus-one/", "/products/published/"]
TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("servers") / "demo.sqlite3"
    script = (
        "import django; django.setup();"
        "from django.core.management import call_command; call_command('migrate', verbosity=0);"
        "from shop.seed import seed; seed(products=5000, reviews=1000)"
    )
    subprocess.run(
        [sys.executable, "-c", script], cwd=DEMO, env=server_env(path), check=True, timeout=300
    )
    return path


def server_env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COV_", "PYTEST"))}
    env.update(
        DJANGO_SETTINGS_MODULE="demo_site.settings",
        DEMO_SQLITE_PATH=str(db),
        DEMO_DB="sqlite",
        PYTHONPATH=f"{DEMO}{os.pathsep}{ROOT}",
    )
    return env


def start(kind: str, db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    addr = f"127.0.0.1:{port}"
    commands = {
        "runserver": [sys.executable, "manage.py", "runserver", "--noreload", addr],
        "gthread": [
            str(BIN / "gunicorn"), "demo_site.wsgi:application", "-b", addr, "-w", "1",
            "--worker-class", "gthread", "--threads", "8", "--timeout", "120",
        ],
        "gevent": [
            str(BIN / "gunicorn"), "demo_site.wsgi:application", "-b", addr, "-w", "1",
            "--worker-class", "gevent", "--worker-connections", "100", "--timeout", "120",
        ],
        "uvicorn": [
            str(BIN / "uvicorn"), "demo_site.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning",
        ],
    }  # fmt: skip
    out = log.open("wb")
    proc = subprocess.Popen(commands[kind], cwd=DEMO, env=server_env(db), stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{kind} exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{addr}/categories/", timeout=5):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"{kind} did not answer within 60 s: {log.read_text()[-3000:]}")


@pytest.fixture
def server(request: pytest.FixtureRequest, database: Path, tmp_path: Path) -> Iterator[Any]:
    kind = request.param
    if kind == "gevent":
        pytest.importorskip("gevent")
    port = free_port()
    log = tmp_path / f"{kind}.log"
    proc = start(kind, database, port, log)
    server = type("Server", (), {})()
    server.kind, server.base, server.proc, server.log = kind, f"http://127.0.0.1:{port}", proc, log
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.status, response.read()


def panel_html(base: str, request_id: str, panel_id: str) -> str:
    query = urllib.parse.urlencode({"request_id": request_id, "panel_id": panel_id})
    status, body = get(f"{base}/__debug__/render_panel/?{query}")
    assert status == 200
    return json.loads(body)["content"]


def check_page(base: str, page: str, panels: bool = True) -> str:
    """Fetch a page and its panels; assert each panel holds only this page's data."""
    status, body = get(base + page)
    assert status == 200, page
    match = re.search(rb'data-request-id="([0-9a-f]+)"', body)
    assert match, f"no toolbar on {page}"
    request_id = match.group(1).decode()
    if not panels:
        return request_id
    funcs, tables, models = PAGES[page]
    html = {p: panel_html(base, request_id, p) for p in PANELS}
    flame = re.search(r'id="djdt-perf-flame-data"[^>]*>(.*?)</script>', html[PANELS[0]], re.S)
    if flame:
        shown = {
            f[0].split(".")[0]
            for f in json.loads(flame.group(1)).get("functions", [])
            if str(f[1]).endswith("shop/views.py")
        }
        assert shown <= funcs, (page, "foreign frames", shown - funcs)
    defs = set(re.findall(r"def (\w+)\(", html["LineMemoryPanel"]))
    view_defs = {d for d in defs if d not in {"get", "setup", "get_first_review"}} | (
        {"ReviewSummaryView"} if defs & {"get", "get_first_review"} else set()
    )
    assert view_defs <= funcs, (page, "foreign lines", view_defs - funcs)
    seen_models = set(re.findall(r"shop\.(Category|Product|Review)\b", html["ModelInstancesPanel"]))
    assert seen_models <= models, (page, "foreign instances", seen_models - models)
    seen_tables = set(re.findall(r"shop_(category|product|review)\b", html["ExplainPanel"]))
    assert seen_tables <= tables, (page, "foreign queries", seen_tables - tables)
    return request_id


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def worker_pid(proc: subprocess.Popen[bytes]) -> int:
    """gunicorn's single worker (its master forks it), else the server process itself."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return int(children[0]) if children else proc.pid


def load(base: str, n: int, pages: list[str], panels_every: int = 1) -> list[str]:
    """n page requests from 16 concurrent clients; returns the errors."""
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        page = pages[i % len(pages)]
        try:
            check_page(base, page, panels=i % panels_every == 0)
        except Exception as exc:  # collected: every failure is reported, not just the first
            with lock:
                errors.append(f"{page}: {type(exc).__name__}: {exc}"[:500])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(n)))
    return errors


def after_load(server: Any) -> None:
    assert server.proc.poll() is None, "the server died"
    check_page(server.base, "/cpu/?n=1500")
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("server", ["runserver", "gthread"], indirect=True)
def test_sixteen_clients_each_see_their_own_data(server: Any) -> None:
    errors = load(server.base, 128, list(PAGES))
    assert errors == [], errors
    after_load(server)


@pytest.mark.parametrize("server", ["gthread"], indirect=True)
def test_memory_flat_over_a_thousand_requests(server: Any) -> None:
    pid = worker_pid(server.proc)
    assert load(server.base, 200, CHEAP, panels_every=5) == []
    rss_200 = rss_kib(pid)
    assert load(server.base, 800, CHEAP, panels_every=5) == []
    rss_1000 = rss_kib(pid)
    growth = rss_1000 - rss_200
    print(f"\n{server.kind} worker RSS: {rss_200} KiB after 200, {rss_1000} KiB after 1,000")
    assert growth < 30 * 1024, f"RSS grew {growth} KiB over 800 requests"
    after_load(server)


@pytest.mark.parametrize("server", ["uvicorn"], indirect=True)
def test_uvicorn_serves_and_leaves_pages_alone(server: Any) -> None:
    """Under ASGI the toolbar disables sync-only panels (ours are): no errors, no mix-ups."""
    errors: list[str] = []

    def one(i: int) -> None:
        page = list(PAGES)[i % len(PAGES)]
        try:
            status, body = get(server.base + page)
            assert status == 200 and b"djDebug" in body
        except Exception as exc:
            errors.append(f"{page}: {exc}")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(64)))
    assert errors == []
    assert server.proc.poll() is None
    _, body = get(server.base + "/categories/")
    request_id = re.search(rb'data-request-id="([0-9a-f]+)"', body).group(1).decode()
    for panel_id in PANELS:
        html = panel_html(server.base, request_id, panel_id)
        assert "Traceback" not in html


@pytest.mark.parametrize("server", ["gevent"], indirect=True)
def test_gevent_workers_correct_or_refused(server: Any) -> None:
    """Under gevent monkey-patching every request is a greenlet on one OS thread.

    Each panel must either measure the right greenlet or say plainly that it cannot.
    """
    errors = load(server.base, 48, list(PAGES))
    assert errors == [], errors
    assert server.proc.poll() is None
    _, body = get(server.base + "/cpu/?n=3000")
    request_id = re.search(rb'data-request-id="([0-9a-f]+)"', body).group(1).decode()
    sampling = panel_html(server.base, request_id, "SamplingProfilerPanel")
    flame = re.search(r'id="djdt-perf-flame-data"[^>]*>(.*?)</script>', sampling, re.S)
    names = {f[0] for f in json.loads(flame.group(1))["functions"]} if flame else set()
    assert "slow_primes" in names or "gevent" in sampling.lower(), (
        "the sampling panel neither sampled the view nor said gevent stops it: "
        + re.sub(r"<[^>]+>", " ", sampling)[:800]
    )
