"""LineMemoryPanel through the real toolbar: the demo's memory page, a class-based view,
decorated / configured / @profile'd helpers, a raising view, the cost cap, the store
round trip and the text export."""

from __future__ import annotations

import inspect
import re
import sys
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from debug_toolbar.toolbar import DebugToolbar
from django.conf import settings
from django.test import Client, override_settings

from debug_toolbar_perf.store import stored_panel, stored_stats
from tests.conftest import assert_valid_html
from tests.line_memory import line_memory_urls as line_memory_urls

PANEL = "LineMemoryPanel"
URLS = "tests.line_memory.line_memory_urls"
MIB = 1 << 20
OTHER_PANELS = {
    "debug_toolbar.panels.profiling.ProfilingPanel",
    "debug_toolbar.panels.redirects.RedirectsPanel",
    "debug_toolbar_perf.sampling.panel.SamplingProfilerPanel",
    "debug_toolbar_perf.instances.panel.ModelInstancesPanel",
    "debug_toolbar_perf.explain.panel.ExplainPanel",
}
TESTS_DIR = str(Path(__file__).resolve().parent.parent)


def perf(**line_memory: Any) -> dict[str, Any]:
    return {"PROJECT_PATHS": [TESTS_DIR, str(settings.BASE_DIR)], "LINE_MEMORY": line_memory}


@pytest.fixture
def heap_site():
    """The default backend, the heap reading (each test asserts the record's backend): the
    tests of figures that hold on reload and of "Others ran"."""
    config = {**settings.DEBUG_TOOLBAR_CONFIG, "DISABLE_PANELS": OTHER_PANELS}
    with override_settings(
        ROOT_URLCONF=URLS, DEBUG_TOOLBAR_CONFIG=config, DEBUG_TOOLBAR_PERF=perf()
    ):
        yield


@pytest.fixture
def site():
    config = {**settings.DEBUG_TOOLBAR_CONFIG, "DISABLE_PANELS": OTHER_PANELS}
    with override_settings(
        ROOT_URLCONF=URLS, DEBUG_TOOLBAR_CONFIG=config, DEBUG_TOOLBAR_PERF=perf()
    ):
        yield


def rows(record: dict[str, Any], name: str) -> dict[int, list[int]]:
    func = next(f for f in record["functions"] if f["name"] == name)
    return {r[0]: r for r in func["lines"]}


def lineno(func: Any, marker: str) -> int:
    lines, start = inspect.getsourcelines(func)
    return start + next(i for i, t in enumerate(lines) if marker in t)


@pytest.mark.django_db
def test_demo_memory_page_puts_the_big_list_line_on_top(toolbar_client, site):
    run = toolbar_client("/memory/")
    assert run.response.status_code == 200
    html = run.content(PANEL)
    record = run.record(PANEL)
    assert record["backend"] == "heap"  # the default, where its counter was built
    # Heaviest-lines table first row: the demo's allocating line with about 46 MiB.
    heaviest = re.search(r"djdt-perf-lm-heaviest.*?<tbody>\s*<tr[^>]*>(.*?)</tr>", html, re.S)
    assert heaviest
    first = unescape(heaviest.group(1))
    assert "big_list = [0] * 6_000_000" in first
    figure = float(re.search(r"\+([\d.]+) MiB", first).group(1))
    assert figure == pytest.approx(6_000_000 * 8 / MIB, rel=0.10)
    assert re.match(r"L\d+ \+4[0-9]\.\d MiB$", run.subtitle(PANEL))
    # The free shows as a negative increment on `del big_list`.
    from shop import views

    del_row = rows(record, "memory")[lineno(views.memory, "del big_list")]
    assert del_row[1] / MIB == pytest.approx(-6_000_000 * 8 / MIB, rel=0.10)
    assert "djdt-perf-lm-neg" in html
    assert "what each line allocated and kept" in html
    assert sys.gettrace() is None


@pytest.mark.django_db
def test_five_reloads_of_a_view_building_model_instances_give_the_same_figure(
    toolbar_client, heap_site
):
    """The allocator reuses what the previous request freed: the figure must not care."""
    from shop.models import Category

    Category.objects.bulk_create(Category(name=f"category {i}") for i in range(5000))
    line = lineno(line_memory_urls.categories, "# INSTANCES-LINE")
    figures = []
    for _ in range(6):  # a first load, then five reloads
        record = toolbar_client("/categories/").record(PANEL)
        assert record["backend"] == "heap"
        figures.append(rows(record, "categories")[line][1] / MIB)
    first, reloads = figures[0], figures[1:]
    middle = sorted(reloads)[2]
    assert middle > 1.0, figures  # 5,000 instances with their state and names: MiBs
    assert all(f == pytest.approx(middle, rel=0.25) for f in reloads), figures
    # The first load also fills caches that stay (SQLite's page cache, Django's): more, not less.
    assert first >= middle * 0.75, figures


@pytest.mark.django_db
def test_two_lines_allocating_the_same_get_the_same_figure_with_memory_reused(
    toolbar_client, heap_site
):
    record = toolbar_client("/reuse/").record(PANEL)
    assert record["backend"] == "heap"
    view_rows = rows(record, "reuse")
    first = view_rows[lineno(line_memory_urls.reuse, "# REUSE-FIRST")][1] / MIB
    second = view_rows[lineno(line_memory_urls.reuse, "# REUSE-SECOND")][1] / MIB
    assert first > 5.0  # 100,000 strings of 15-18 characters and their list
    assert second == pytest.approx(first, rel=0.10)


@pytest.mark.django_db
def test_the_header_total_is_the_table_summed_and_the_subtitle_its_heaviest_row(
    toolbar_client, heap_site
):
    run = toolbar_client("/reuse/")
    record = run.record(PANEL)
    func = next(f for f in record["functions"] if f["name"] == "reuse")
    assert record["lines_bytes"] == sum(r[1] for r in func["lines"])
    html = unescape(run.content(PANEL))
    table = re.search(r"djdt-perf-lm-table.*?<tbody>(.*?)</tbody>", html, re.S)
    assert table
    cells = re.findall(r"djdt-perf-lm-inc[^>]*>([-+\d.]+) MiB<", table.group(1))
    header = re.search(r"djdt-perf-lm-total[^>]*>([-+\d.]+) MiB<", html)
    assert header and len(cells) >= 4
    # Equal to the table as shown, up to the 0.05 MiB rounding of each cell.
    assert float(header.group(1)) == pytest.approx(
        sum(float(c) for c in cells), abs=0.05 * len(cells)
    )
    # The subtitle is the table's heaviest row, figure as the table shows it.
    top = max(func["lines"], key=lambda r: r[1])
    assert run.subtitle(PANEL) == f"L{top[0]} +{top[1] / MIB:.1f} MiB"
    assert f"+{top[1] / MIB:.1f}" in cells


def checked(records: list[dict[str, Any]]) -> int:
    """Intervals where other threads used CPU, whether they kept memory or not."""
    return sum(r["quiet_overlaps"] + r["shared_intervals"] for r in records)


@pytest.mark.django_db
def test_the_autoreloader_ticking_leaves_the_line_its_figure(toolbar_client, heap_site):
    """runserver's autoreloader stats every module file in another thread, holding its
    snapshot for a moment: the line keeps its own figure; what the thread held at the end
    of an interval, if anything, is kept apart under its name, never the line's amount."""
    import threading
    import tracemalloc

    from django.utils.autoreload import StatReloader, iter_modules_and_files

    from shop.models import Category

    Category.objects.bulk_create(Category(name=f"category {i}") for i in range(10000))
    line = lineno(line_memory_urls.categories, "# INSTANCES-LINE")
    toolbar_client("/categories/")  # the first load's caches
    alone = rows(toolbar_client("/categories/").record(PANEL), "categories")[line][1]
    reloader, stop = StatReloader(), threading.Event()

    def tick() -> None:
        while not stop.is_set():
            dict(reloader.snapshot_files())  # what each of its ticks does

    # What one tick can hold at most: a snapshot, built while its module list is rebuilt
    # (Django caches that list and rebuilds it when sys.modules changes), measured here.
    iter_modules_and_files.cache_clear()
    tracemalloc.start()
    try:
        dict(reloader.snapshot_files())
        tick_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The line allocates more than a tick can hold, so the two cannot be mistaken.
    assert tick_peak * 1.5 < alone, (tick_peak, alone)
    thread = threading.Thread(target=tick, name="autoreloader")
    thread.start()
    records: list[dict[str, Any]] = []
    try:  # until the CPU clocks have seen it run during a view (the GIL decides when)
        while len(records) < 3 or (len(records) < 12 and not checked(records)):
            records.append(toolbar_client("/categories/").record(PANEL))
    finally:
        stop.set()
        thread.join()
    assert checked(records)
    for record in records:
        row = rows(record, "categories")[line]
        assert row[1] == pytest.approx(alone, rel=0.25), (row, alone)
        assert set(record["other_threads"]) <= {"autoreloader"}
        # Kept apart: at most what the thread can hold (glibc's chunk headers included),
        # never the line's amount.
        assert abs(row[4]) <= tick_peak * 1.5, (row, tick_peak)


@pytest.mark.django_db
def test_no_others_ran_with_one_client(toolbar_client, heap_site):
    from shop.models import Category

    Category.objects.bulk_create(Category(name=f"category {i}") for i in range(3000))
    for _ in range(5):
        run = toolbar_client("/categories/")
        record = run.record(PANEL)
        assert record["backend"] == "heap"
        assert record["shared_intervals"] == 0 and record["other_threads"] == {}
        assert "Other code ran during" not in run.content(PANEL)


@pytest.mark.django_db
def test_heap_backend_is_labelled(toolbar_client, heap_site):
    run = toolbar_client("/memory/")
    record = run.record(PANEL)
    assert record["backend"] == "heap"
    assert "what each line allocated and kept" in run.content(PANEL)
    from shop import views

    line = lineno(views.memory, "big_list = [0] * 6_000_000")
    assert rows(record, "memory")[line][1] / MIB == pytest.approx(6_000_000 * 8 / MIB, rel=0.10)


@pytest.mark.django_db
def test_tracemalloc_backend_is_labelled(toolbar_client, site):
    with override_settings(DEBUG_TOOLBAR_PERF=perf(BACKEND="tracemalloc")):
        run = toolbar_client("/memory/")
    record = run.record(PANEL)
    assert record["backend"] == "tracemalloc" and record["peak_exact"]
    html = run.content(PANEL)
    assert "tracemalloc (Python allocations)" in html
    assert "Allocation tracing attributes exactly what Python allocated" in html
    import tracemalloc

    assert not tracemalloc.is_tracing()


@pytest.mark.django_db
def test_class_based_view_handler_is_traced(toolbar_client, site):
    run = toolbar_client("/heavy/")
    record = run.record(PANEL)
    assert [f["label"] for f in record["functions"]] == [
        "tests.line_memory.line_memory_urls.Heavy.get"
    ]
    inc = rows(record, "get")[lineno(line_memory_urls.Heavy.get, "# CBV-LINE")][1] / MIB
    assert inc == pytest.approx(7_000_000 * 8 / MIB, rel=0.10)


@pytest.mark.django_db
def test_demo_review_summary_get_is_traced(toolbar_client, site):
    run = toolbar_client("/reviews/summary/")
    record = run.record(PANEL)
    func = record["functions"][0]
    assert func["label"] == "shop.views.ReviewSummaryView.get"
    assert func["source"][0].strip().startswith("def get(self, request")
    run.content(PANEL)


@pytest.mark.django_db
def test_decorated_configured_and_memory_profiler_helpers(toolbar_client, site):
    dotted = "tests.line_memory.line_memory_urls.settings_helper"
    with override_settings(DEBUG_TOOLBAR_PERF=perf(FUNCTIONS=[dotted], BACKEND="tracemalloc")):
        run = toolbar_client("/helpers/")
    record = run.record(PANEL)
    by_name = {f["name"]: f for f in record["functions"]}
    assert by_name["decorated_helper"]["why"] == "decorator"
    assert by_name["settings_helper"]["why"] == "settings"
    assert by_name["mp_helper"]["why"] == "memory_profiler @profile"
    for name, marker, size in [
        ("decorated_helper", "# DECORATED-LINE", 6),
        ("settings_helper", "# SETTINGS-LINE", 7),
        ("mp_helper", "# MP-LINE", 9),
    ]:
        func = getattr(line_memory_urls, name)
        func = getattr(func, "__wrapped__", func)
        assert rows(record, name)[lineno(func, marker)][1] / MIB == pytest.approx(size, rel=0.1)
    run.content(PANEL)


@pytest.mark.django_db
def test_view_that_raises_stops_tracing_and_shows_the_record(site):
    created: list[DebugToolbar] = []
    DebugToolbar._created.connect(
        lambda sender, toolbar, **kw: created.append(toolbar), weak=False, dispatch_uid="lm-raise"
    )
    try:
        response = Client(raise_request_exception=False).get("/raises/")
    finally:
        DebugToolbar._created.disconnect(dispatch_uid="lm-raise")
    assert response.status_code == 500
    assert sys.gettrace() is None
    if sys.version_info >= (3, 12):
        assert "debug_toolbar_perf" not in [sys.monitoring.get_tool(i) for i in range(6)]
    stored = stored_panel(created[-1].request_id, PANEL)
    record = stored.get_stats()["record"]
    inc = rows(record, "raises")[lineno(line_memory_urls.raises, "# RAISES-LINE")][1] / MIB
    assert inc == pytest.approx(6_000_000 * 8 / MIB, rel=0.10)
    assert_valid_html(stored.content)


@pytest.mark.django_db
def test_async_view_under_wsgi_is_measured_in_its_event_loop_thread(toolbar_client, site):
    """Under WSGI Django runs an async view with async_to_sync, in an event loop in a new
    thread (3.10/3.11: reached through threading.settrace; 3.12+: sys.monitoring)."""
    import threading

    run = toolbar_client("/async-alloc/")
    assert run.response.status_code == 200
    record = run.record(PANEL)
    view_rows = rows(record, "async_alloc")
    alloc = view_rows[lineno(line_memory_urls.async_alloc, "# ASYNC-ALLOC")]
    assert (alloc[1] + alloc[4]) / MIB == pytest.approx(6_000_000 * 8 / MIB, rel=0.10)
    assert alloc[1] == 0 or alloc[4] == 0
    assert record["suspensions"] >= 1
    assert sys.gettrace() is None and threading.gettrace() is None


@pytest.mark.django_db
def test_hot_loop_is_capped_and_says_what_was_cut(toolbar_client, site):
    with override_settings(DEBUG_TOOLBAR_PERF=perf(MAX_LINE_EVENTS=500)):
        run = toolbar_client("/hot-loop/")
    record = run.record(PANEL)
    assert record["capped"] and record["events"] == 501
    html = unescape(run.content(PANEL))
    assert "Cost cap reached" in html and "after the cap" in html
    assert "(capped)" in run.subtitle(PANEL)


@pytest.mark.django_db
def test_text_export_is_memory_profiler_layout(client, toolbar_client, site):
    run = toolbar_client("/memory/")
    links = run.stored_panel(PANEL).export_links()
    assert [link["format"] for link in links] == ["txt"]
    text = client.get(links[0]["url"]).content.decode()
    assert "Line #    Mem usage    Increment  Occurrences   Line Contents" in text
    assert re.search(r"\d+\s+[\d.]+ MiB\s+4\d\.\d MiB\s+1\s+big_list = \[0\] \* 6_000_000", text)


@pytest.mark.django_db
def test_unresolved_url_records_nothing_traced(toolbar_client, site):
    run = toolbar_client("/no-such-page/")
    assert run.response.status_code == 404
    record = run.record(PANEL)
    assert record["functions"] == []
    assert "None of the traced code ran" in run.content(PANEL)


@pytest.mark.django_db(transaction=True)
def test_concurrent_request_on_a_threaded_server_changes_nothing(live_server, site):
    """A real threaded server: another request allocating 100 MB while this one waits."""
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    created: list[DebugToolbar] = []
    DebugToolbar._created.connect(
        lambda sender, toolbar, **kw: created.append(toolbar), weak=False, dispatch_uid="lm-live"
    )
    line_memory_urls.other_ready.clear()
    line_memory_urls.measured_waiting.clear()
    line_memory_urls.other_done.clear()
    try:
        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(urllib.request.urlopen, live_server.url + p, timeout=30)
                for p in ("/measured/", "/other/")
            ]
            assert all(f.result().status == 200 for f in futures)
    finally:
        DebugToolbar._created.disconnect(dispatch_uid="lm-live")
    toolbar = next(t for t in created if t.request.path == "/measured/")
    record = stored_stats(toolbar.request_id, PANEL)["record"]
    line_memory_urls.other_holds.clear()
    view_rows = rows(record, "measured")
    big = 6_000_000 * 8 / MIB
    alloc = view_rows[lineno(line_memory_urls.measured, "# MEASURED-ALLOC")]
    wait = view_rows[lineno(line_memory_urls.measured, "# MEASURED-WAIT")]
    free = view_rows[lineno(line_memory_urls.measured, "# MEASURED-FREE")]
    # On a loaded machine the other request's thread can use over 0.2 ms of CPU (waking up)
    # during the allocating line: the line is then flagged, its figure kept apart, not lost.
    assert (alloc[1] + alloc[4]) / MIB == pytest.approx(big, rel=0.10)
    assert alloc[1] == 0 or alloc[4] == 0
    # The free happens while the other request's toolbar may still be working: it is then
    # kept apart with the other threads' amounts, never lost and never mixed in silently.
    assert (free[1] + free[4]) / MIB == pytest.approx(-big, rel=0.10)
    assert free[1] == 0 or free[4] == 0
    # Setting the event wakes the other request at once: its 100 MB lands during the set()
    # line or the wait line (the heap reading sees a malloc when it happens), never in their
    # increments; kept apart, net of whatever its toolbar freed meanwhile.
    woken = view_rows[lineno(line_memory_urls.measured, "measured_waiting.set()")]
    assert abs(wait[1]) / MIB < 2.0 and abs(woken[1]) / MIB < 2.0
    assert (wait[4] + woken[4]) / MIB > 50 and wait[5] + woken[5] >= 1
    assert [f["name"] for f in record["functions"]] == ["measured"]  # "other" not traced
