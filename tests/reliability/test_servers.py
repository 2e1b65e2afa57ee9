"""Real servers on 127.0.0.1, 16 concurrent clients, all four panels on.

Each server runs the demo (plus the probe views of tests/reliability) in a subprocess on
a temporary seeded SQLite file. Every client fetches a demo page, reads the toolbar's
request id from it, fetches each perf panel through ``/__debug__/render_panel/`` and checks
it holds exactly that page's data: its own functions, lines (with their exact number of
executions), model instances (exact counts) and statements (exact count, its own tables),
and nothing of another request. The pages include async views (``demo/shop/views.py``):
under uvicorn they run in the event-loop thread interleaved with other requests, their ORM
work in asgiref's executor thread, and the sync pages in that executor thread too. Then: no
errors, no hangs, the process is alive, every hook of ours is gone once the load is over
(probe views, panels off), and RSS stays flat over 1,000 requests (the toolbar keeps only
RESULTS_CACHE_SIZE requests).
"""

from __future__ import annotations

import html as htmllib
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
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
BIN = Path(sys.executable).parent
PANELS = ("SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel")


@dataclass(frozen=True)
class Page:
    """What one demo page's panels must hold: exactly this, and nothing of another request."""

    #: Function roots in shop/views.py the flame graph and the line tables may show.
    funcs: frozenset[str]
    #: shop_<table> names of the page's statements (the Explain panel shows exactly these).
    tables: frozenset[str] = frozenset()
    #: Model -> instances the page builds (exact; no other model may appear).
    models: Mapping[str, int] = field(default_factory=dict)
    #: SQL statements the view runs (exact).
    statements: int = 0
    #: Start of a single-line statement of the view -> times it runs per request (exact):
    #: two requests of the same view mixed up show twice the count.
    lines: Mapping[str, int] = field(default_factory=dict)
    #: Start of a line -> the most it may be charged ("Increment", MiB, either sign): an
    #: await line must not be charged what other requests allocated while it was parked.
    charged: Mapping[str, float] = field(default_factory=dict)
    #: A function the sampling panel must have sampled (the page spends most of its time there:
    #: at n=1500 the cpu page spent ~25% in slow_primes and the rest rendering its rows, and
    #: under load 1-3 of 168 requests had none of their ~20 samples there).
    hot: str = ""


def _page(funcs: Iterable[str], tables: Iterable[str] = (), **kw: Any) -> Page:
    return Page(frozenset(funcs), frozenset(tables), **kw)


RENDER = "return render(request, "
#: page -> what its panels must show. Async views last (see demo/shop/views.py).
PAGES: dict[str, Page] = {
    "/cpu/?n=3000": _page(
        {"cpu", "slow_primes"}, lines={"primes = slow_primes(limit)": 1, RENDER: 1},
        hot="slow_primes",
    ),
    "/products/n-plus-one/": _page(
        {"n_plus_one"}, {"product", "category", "review"}, models={"Product": 50, "Category": 50},
        statements=101, lines={"products = Product.objects": 1, RENDER: 1},
    ),
    "/products/fixed/": _page(
        {"fixed"}, {"product", "category", "review"}, models={"Product": 50, "Category": 50},
        statements=1, lines={RENDER: 1},
    ),
    "/reviews/summary/": _page(
        {"ReviewSummaryView"}, {"review"}, models={"Review": 1001}, statements=2,
        lines={"review = self.get_first_review()": 1, "return self.render_to_response(": 1},
    ),
    "/products/popular/": _page(
        {"sorted_products"}, {"product"}, statements=1, lines={"products = list(Product": 1}
    ),
    "/categories/": _page(
        {"categories"}, {"category"}, statements=1, lines={"names = list(Category": 1}
    ),
    "/products/published/": _page(
        {"unindexed"}, {"product"}, models={"Product": 50}, statements=2,
        lines={"products = list(published": 1},
    ),
    "/async/cpu/?fn=collatz&n=8000": _page(
        {"async_cpu", "slow_collatz"}, lines={"second = hot(limit)": 1, "return render(": 1},
        hot="slow_collatz",
    ),
    "/async/cpu/?fn=digits&n=8000": _page(
        {"async_cpu", "slow_digit_sums"}, lines={"second = hot(limit)": 1, "return render(": 1},
        hot="slow_digit_sums",
    ),
    "/async/orm/": _page(
        {"async_orm"}, {"review"}, models={"Review": 40}, statements=2,
        lines={"title = f\"Async ORM": 1, "return render(": 1},
    ),
    "/async/alloc/": _page(
        {"async_alloc"}, lines={"chunks.append(": 5, "return render(": 1},
        charged={"await asyncio.sleep(": 1.0},  # other requests allocate 1.9 MiB at a time
    ),
}  # fmt: skip
SYNC_PAGES = [p for p in PAGES if not p.startswith("/async/")]
CHEAP = ["/categories/", "/products/popular/", "/products/n-plus-one/", "/products/published/"]
CHEAP_ASYNC = [*CHEAP, "/async/orm/", "/async/alloc/"]
TIMEOUT = 60
STARTUP_S = 180
#: Cookies switching all four panels off (as unticking them in the toolbar does).
ALL_OFF = "; ".join(f"djdt{p}=off" for p in PANELS)
#: Python's default GIL switch interval: the thread sampler shortens it while it runs.
DEFAULT_SWITCH_INTERVAL = 0.005


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_database(path: Path) -> Path:
    """A seeded demo SQLite file (5,000 products, 1,000 reviews), built in a subprocess."""
    script = (
        "import django; django.setup();"
        "from django.core.management import call_command; call_command('migrate', verbosity=0);"
        "from shop.seed import seed; seed(products=5000, reviews=1000)"
    )
    subprocess.run(
        [sys.executable, "-c", script], cwd=DEMO, env=server_env(path), check=True, timeout=300
    )
    return path


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_database(tmp_path_factory.mktemp("servers") / "demo.sqlite3")


def server_env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COV_", "PYTEST"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.reliability.server_settings",
        DEMO_SQLITE_PATH=str(db),
        DEMO_DB="sqlite",
        PYTHONPATH=f"{DEMO}{os.pathsep}{ROOT}",
        # A server killed by a signal leaves a C-level traceback of every thread in its log.
        PYTHONFAULTHANDLER="1",
    )
    return env


def start(
    kind: str, db: Path, port: int, log: Path, cache_size: int | None = None, **env: str
) -> subprocess.Popen[bytes]:
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
    env = {**server_env(db), **env}
    if cache_size is not None:
        env["PERF_RESULTS_CACHE_SIZE"] = str(cache_size)
    proc = subprocess.Popen(commands[kind], cwd=DEMO, env=env, stdout=out, stderr=out)
    # Generous: on the shared 2-core machine at load average 25, a server's first answer
    # took 14-37 s (imports, first toolbar render); 60 s was exceeded 3 times in one run.
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{kind} exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{addr}/categories/", timeout=15):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"{kind} did not answer within {STARTUP_S} s: {log.read_text()[-3000:]}")


@pytest.fixture
def results_cache_size() -> int | None:
    """Keep every request of a load (None: the toolbar's default, 25).

    Clients fetch a page's panels after the page; with 25 kept, a busy server drops a
    request's data before its client asks ("Data for this panel isn't available anymore").
    """
    return 2000


@pytest.fixture
def server(
    request: pytest.FixtureRequest, database: Path, tmp_path: Path, results_cache_size: int | None
) -> Iterator[Any]:
    kind = request.param
    if kind == "gevent":
        pytest.importorskip("gevent")
    port = free_port()
    log = tmp_path / f"{kind}.log"
    proc = start(kind, database, port, log, results_cache_size)
    server = type("Server", (), {})()
    server.kind, server.base, server.proc, server.log = kind, f"http://127.0.0.1:{port}", proc, log
    yield server
    stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server started by :func:`start`; kill it if it does not exit in 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def get(url: str, cookie: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.status, response.read()


def panel_html(base: str, request_id: str, panel_id: str) -> str:
    query = urllib.parse.urlencode({"request_id": request_id, "panel_id": panel_id})
    status, body = get(f"{base}/__debug__/render_panel/?{query}")
    assert status == 200
    return json.loads(body)["content"]


def _text(fragment: str) -> str:
    return htmllib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))).strip()


def line_rows(html: str) -> list[tuple[str, int, float]]:
    """(source text, occurrences, increment MiB) of every row of the line-memory tables
    (0, 0.0: the line did not run)."""
    rows = []
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        if len(cells) == 7 and "djdt-perf-lm-src" in cells[6]:
            occurrences = _text(cells[4])
            increment = re.match(r"[+-]?[\d.]+", _text(cells[2]))
            rows.append(
                (
                    _text(cells[6]),
                    int(occurrences) if occurrences.isdigit() else 0,
                    float(increment.group()) if increment else 0.0,
                )
            )
    return rows


def panel_problems(panel: str, html: str, spec: Page, strict: bool) -> list[str]:
    """What is wrong with one panel of one page: foreign data, or (strict) missing/wrong data.

    Each problem reads "<panel>: <kind>: <detail>" so failures group by panel and kind.
    """
    found: list[str] = []
    if "Traceback" in html and "djdt-perf-error" not in html:
        found.append(f"{panel}: traceback in panel")
    if strict:
        for cls, kind in (("djdt-perf-error", "failed"), ("djdt-perf-problem", "refused")):
            for block in re.findall(rf'<div class="{cls}"[^>]*>(.*?)</div>', html, re.S):
                found.append(f"{panel}: {kind}: {_text(block)[:200]}")
    if panel == "SamplingProfilerPanel":
        flame = re.search(r'id="djdt-perf-flame-data"[^>]*>(.*?)</script>', html, re.S)
        functions = json.loads(flame.group(1)).get("functions", []) if flame else []
        ours = [f for f in functions if str(f[1]).endswith("shop/views.py")]
        shown = {f[0].split(".")[0] for f in ours}
        if shown - spec.funcs:
            found.append(f"{panel}: foreign frames: {sorted(shown - spec.funcs)}")
        not_sampled = re.search(r'djdt-perf-not-sampled"[^>]*>(.*?)</div>', html, re.S)
        if not_sampled:
            found.append(f"{panel}: not sampled: {_text(not_sampled.group(1))[:200]}")
        elif strict and spec.hot and spec.hot not in {f[0] for f in ours}:
            summary = re.search(r"<strong>[\d,]+</strong> samples in[^<]*(<span[^>]*>[^<]*)?", html)
            got = _text(summary.group(0)) if summary else "no sample count"
            found.append(f"{panel}: own hot function not sampled: {spec.hot} ({got})")
    elif panel == "LineMemoryPanel":
        defs = set(re.findall(r"def (\w+)\(", html))
        view_defs = {d for d in defs if d not in {"get", "setup", "get_first_review"}} | (
            {"ReviewSummaryView"} if defs & {"get", "get_first_review"} else set()
        )
        if view_defs - spec.funcs:
            found.append(f"{panel}: foreign lines: {sorted(view_defs - spec.funcs)}")
        if strict:
            rows = line_rows(html)
            for start, expected in spec.lines.items():
                counts = [occ for text, occ, _ in rows if text.startswith(start)]
                if not counts or not any(counts):
                    events = re.search(r"Line events <strong>(\d+)</strong>", html)
                    found.append(
                        f"{panel}: own line not traced: {start!r} "
                        f"(line events: {events.group(1) if events else '?'})"
                    )
                elif any(c != expected for c in counts if c):
                    found.append(f"{panel}: wrong occurrences: {start!r} {counts} != {expected}")
            for start, most in spec.charged.items():
                charged = [inc for text, _, inc in rows if text.startswith(start)]
                if any(abs(inc) > most for inc in charged):
                    found.append(f"{panel}: foreign memory charged: {start!r} {charged} MiB")
    elif panel == "ModelInstancesPanel":
        seen = set(re.findall(r"shop\.(Category|Product|Review)\b", html))
        if seen - set(spec.models):
            found.append(f"{panel}: foreign instances: {sorted(seen - set(spec.models))}")
        if strict:
            counts = {
                m: int(n)
                for m, n in re.findall(
                    r'<tr data-model="shop\.(\w+)">.*?data-count="(\d+)"', html, re.S
                )
            }
            if counts != dict(spec.models):
                found.append(f"{panel}: wrong counts: {counts} != {dict(spec.models)}")
    elif panel == "ExplainPanel":
        seen = set(re.findall(r"shop_(category|product|review)\b", html))
        if seen - spec.tables:
            found.append(f"{panel}: foreign queries: {sorted(seen - spec.tables)}")
        if strict:
            if spec.tables - seen:
                found.append(f"{panel}: own tables missing: {sorted(spec.tables - seen)}")
            count = re.search(r"<strong>([\d,]+)</strong> statements?\b", html)
            statements = int(count.group(1).replace(",", "")) if count else None
            if statements != spec.statements:
                found.append(f"{panel}: wrong statement count: {statements} != {spec.statements}")
    return found


def check_page(base: str, page: str, mode: str = "strict") -> list[str]:
    """Fetch a page and (unless mode is "page") its four panels; return what is wrong.

    "strict": exactly this page's data; "foreign": no other page's data; "fetch": panels
    render, content not checked; "page": the page alone. HTTP errors raise.
    """
    status, body = get(base + page)
    assert status == 200, page
    match = re.search(rb'data-request-id="([0-9a-f]+)"', body)
    assert match, f"no toolbar on {page}"
    if mode == "page":
        return []
    request_id = match.group(1).decode()
    problems = []
    for panel in PANELS:
        html = panel_html(base, request_id, panel)
        if mode == "fetch":
            continue
        if "isn't available anymore" in html:  # else every check below passes on nothing
            problems.append(f"{panel}: evicted from the toolbar's store before it was read")
        else:
            problems += panel_problems(panel, html, PAGES[page], strict=mode == "strict")
    return problems


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def retained_kib(base: str) -> int:
    """The worker's RSS after ``malloc_trim(0)``: what it holds, not what glibc caches."""
    status, body = get(f"{base}/r/memstats/?trim=1")
    assert status == 200
    return int(json.loads(body)["rss_kib_after_trim"])


def worker_pid(proc: subprocess.Popen[bytes]) -> int:
    """gunicorn's single worker (its master forks it), else the server process itself."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return int(children[0]) if children else proc.pid


def load(
    base: str, n: int, pages: list[str], mode: str = "strict", panels_every: int = 1
) -> list[str]:
    """n page requests from 16 concurrent clients; returns "<page> <problem>" for each fault."""
    problems: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        page = pages[i % len(pages)]
        try:
            found = check_page(base, page, mode if i % panels_every == 0 else "page")
        except Exception as exc:  # collected: every failure is reported, not just the first
            found = [f"request: {type(exc).__name__}: {exc}"[:500]]
        with lock:
            problems.extend(f"{page} {p}" for p in found)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(n)))
    return problems


def burst(base: str, pages: list[str], k: int = 8) -> list[str]:
    """``k`` requests of the same page released at once, page after page.

    The mixed load meets two requests of one view only by chance; here they overlap for
    sure (the async pages interleave at every await), so one request's panels picking up
    the other's lines, instances or statements shows up as wrong counts.
    """
    problems: list[str] = []
    for page in pages:
        gate = threading.Barrier(k)

        def one(_: int, page: str = page, gate: threading.Barrier = gate) -> list[str]:
            gate.wait(timeout=TIMEOUT)
            try:
                return check_page(base, page)
            except Exception as exc:
                return [f"request: {type(exc).__name__}: {exc}"[:500]]

        with ThreadPoolExecutor(k) as pool:
            for found in pool.map(one, range(k)):
                problems.extend(f"{page} (x{k} at once) {p}" for p in found)
    return problems


def alive(server: Any) -> None:
    """The server survived the load; else its exit status and the end of its log."""
    code = server.proc.poll()
    if code is not None:
        log = server.log.read_text(errors="replace")[-6000:]
        raise AssertionError(f"{server.kind} died during the load (exit status {code}):\n{log}")


def report(problems: list[str], n: int) -> str:
    """Problems grouped by page, panel and kind, with counts out of ``n`` requests."""
    kinds = Counter(":".join(p.split(":")[:2]) for p in problems)
    lines = [f"{count:4} x {kind}" for kind, count in sorted(kinds.items())]
    examples = {":".join(p.split(":")[:2]): p for p in problems}
    return (
        f"{len(problems)} problems in {n} requests:\n"
        + "\n".join(lines)
        + "\nOne example of each:\n"
        + "\n".join(sorted(examples.values()))
    )


def hooks_left(base: str) -> list[str]:
    """Hooks of ours still active once the load is over, seen from inside views (panels off).

    The sync probe runs in a request thread (under ASGI: asgiref's executor thread), the
    async one in the event-loop thread; 16 of each, so every worker thread is seen.
    """
    left: list[str] = []

    def one(url: str) -> None:
        _, body = get(base + url, cookie=ALL_OFF)
        found = json.loads(body)
        leftovers = {
            "sampler thread": found["sampler_threads"],
            "vmprof enabled": found["vmprof_enabled"],
            "GIL switch interval changed": found["switchinterval"] != DEFAULT_SWITCH_INTERVAL,
            "trace function": found["gettrace"],
            "sys.monitoring tool": found["monitoring"],
            "instances collector bound": found["collector_bound"],
            "execute wrapper": found.get("queries_wrapped", 0),
        }
        left.extend(f"{url}: {k}: {v}" for k, v in leftovers.items() if v)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, ["/r/probe/?json=1", "/r/aprobe/"] * 16))
    return sorted(set(left))


def after_load(server: Any, page: str = "/cpu/?n=3000") -> None:
    """Alive, every hook gone, one more page measured right, no traceback in the log."""
    alive(server)
    assert hooks_left(server.base) == []
    assert check_page(server.base, page) == []
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize(
    ("server", "pages"),
    [("runserver", SYNC_PAGES), ("gthread", SYNC_PAGES), ("uvicorn", list(PAGES))],
    ids=["runserver", "gthread", "uvicorn"],
    indirect=["server"],
)
def test_sixteen_clients_each_see_their_own_data(server: Any, pages: list[str]) -> None:
    """Under uvicorn the async pages run interleaved in the event-loop thread and the sync
    ones in asgiref's executor thread: each request's panels must still hold only its data."""
    n = 16 * len(pages)
    problems = load(server.base, n, pages) + burst(server.base, pages)
    alive(server)
    assert problems == [], report(problems, n + 8 * len(pages))
    after_load(server, pages[-1])


@pytest.mark.parametrize("server", ["gthread"], indirect=True)
def test_async_views_on_a_wsgi_server(server: Any) -> None:
    """Django runs an async view under WSGI through async_to_sync: the coroutine runs in a
    new event-loop thread, its ORM calls back in the request thread.

    One check is relaxed here: the bound on the ``await`` line of ``/async/alloc/``. Each
    request has an event loop of its own, so nothing of another request runs while the
    coroutine is parked (that is checked under uvicorn, where it does); the line's own
    instants can still overlap another *thread's* allocation, which RSS cannot tell apart
    and the CPU-time test behind "Others ran" misses when the other thread allocates in
    under 0.2 ms (measured: 1 request in ~200, 3.8-7.8 MiB). Documented in
    docs/line_memory.md; every other check of every page stays exact.
    """
    n = 16 * len(PAGES)
    problems = load(server.base, n, list(PAGES)) + burst(server.base, list(PAGES))
    rss_overlap = [p for p in problems if "foreign memory charged: 'await asyncio.sleep(" in p]
    total = n + 8 * len(PAGES)
    print(f"\nawait line overlapped another thread's allocation: {len(rss_overlap)}/{total}")
    problems = [p for p in problems if p not in rss_overlap]
    # Charging the parked time (the bug this guards against) shows on most requests.
    assert len(rss_overlap) <= total // 30, report(rss_overlap, total)
    alive(server)
    assert problems == [], report(problems, total)
    after_load(server, "/async/alloc/")


@pytest.mark.parametrize(
    ("server", "pages"),
    [
        ("gthread", CHEAP),
        ("uvicorn", CHEAP_ASYNC),
    ],
    ids=["gthread", "uvicorn"],
    indirect=["server"],
)
@pytest.mark.parametrize("results_cache_size", [None], ids=["default-cache"])
def test_memory_flat_over_a_thousand_requests(server: Any, pages: list[str]) -> None:
    """With the toolbar's RESULTS_CACHE_SIZE (25), far fewer than the requests made.

    Panels rendered every 5th request (their content is the isolation test's business).
    What is compared is the worker's RSS once glibc has handed back the free memory it
    caches (``malloc_trim``, through the server's memstats view): with 8 threads, glibc's
    per-thread arenas keep 57-139 MB of freed memory, and raw RSS growth over the same 800
    requests swung from -39 to +48 MB between runs of the same commit, while live objects,
    allocated blocks and the live C heap stayed the same. A leak is live memory: it stays.
    """
    pid = worker_pid(server.proc)
    assert load(server.base, 200, pages, mode="fetch", panels_every=5) == []
    rss_200, kept_200 = rss_kib(pid), retained_kib(server.base)
    assert load(server.base, 800, pages, mode="fetch", panels_every=5) == []
    rss_1000, kept_1000 = rss_kib(pid), retained_kib(server.base)
    growth = kept_1000 - kept_200
    print(
        f"\n{server.kind} RSS: {rss_200} KiB after 200, {rss_1000} KiB after 1,000; "
        f"after malloc_trim: {kept_200} KiB, {kept_1000} KiB"
    )
    assert growth < 30 * 1024, f"RSS grew {growth} KiB over 800 requests"
    assert server.proc.poll() is None, "the server died"
    assert hooks_left(server.base) == []


@pytest.mark.parametrize("server", ["gevent"], indirect=True)
def test_gevent_workers_correct_or_refused(server: Any) -> None:
    """Under gevent monkey-patching every request is a greenlet on one OS thread.

    Each panel must either measure the right greenlet or say plainly that it cannot.
    """
    problems = load(server.base, 48, SYNC_PAGES, mode="foreign")
    alive(server)
    assert problems == [], report(problems, 48)
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
