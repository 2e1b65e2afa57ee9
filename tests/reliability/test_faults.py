"""Faults never change the user's response, and the panel says what went wrong.

Each case injects one fault (an engine missing or raising, its hook slot taken by
another tool, a database that fails, a view that raises, a response the toolbar
cannot decorate), makes the same request with our four panels and without them
(the toolbar still on), and compares status, headers (minus the toolbar's own)
and body (the toolbar's insertion stripped). Then it reads the panel's HTML as
the browser gets it (re-rendered from the toolbar's JSON store).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html import unescape
from typing import Any

import pytest
from django.db import connections
from django.db.models.signals import post_init
from django.test import Client, override_settings

from debug_toolbar_perf import availability
from debug_toolbar_perf.explain import capture
from debug_toolbar_perf.instances import collector as instances
from debug_toolbar_perf.instances import hook as instances_hook
from debug_toolbar_perf.line_memory import session as line_memory_session
from debug_toolbar_perf.line_memory import sources as line_memory_sources
from debug_toolbar_perf.line_memory import state as line_memory
from debug_toolbar_perf.sampling import choice as engine_choice
from debug_toolbar_perf.sampling import panel as sampling_panel
from debug_toolbar_perf.sampling import thread as thread_engine
from debug_toolbar_perf.sampling import vmprof_engine
from tests.conftest import run_with_toolbar, strip_toolbar
from tests.reliability.conftest import panels_without_ours

#: Headers the toolbar itself adds or changes (panels' Server-Timing, the history id, the
#: length of the page with the toolbar inserted).
TOOLBAR_HEADERS = {"server-timing", "content-length", "djdt-request-id"}
_VOLATILE = [
    # The technical 500 page (DEBUG=True, which the toolbar needs) shows object addresses,
    # ids made from them, the server time and every setting (DEBUG_TOOLBAR_PANELS differs).
    (re.compile(rb"0x[0-9a-f]+"), b"0x?"),
    (re.compile(rb"(pre|post|v|c)\d{6,}"), b"\\1?"),
    (re.compile(rb"Server time:.*?</td>", re.S), b""),
    (re.compile(rb'<h3 id="settings-info">.*', re.S), b""),
]


@pytest.fixture(autouse=True)
def _setup(our_urls: None, db: None) -> Iterator[None]:
    from shop.models import Category, Product

    cats = Category.objects.bulk_create(Category(name=f"Cat {i}") for i in range(5))
    Product.objects.bulk_create(
        Product(name=f"P{i}", category=cats[i % 5], price=1, published=i % 2 == 0, popularity=i)
        for i in range(20)
    )
    yield


def snapshot(response: Any) -> tuple[int, dict[str, str], bytes]:
    """What the user gets: status, headers except the toolbar's, body without the toolbar."""
    if response.streaming:
        body = b"".join(response.streaming_content)
    else:
        body = strip_toolbar(response.content)
    if response.status_code == 500:
        for pattern, repl in _VOLATILE:
            body = pattern.sub(repl, body)
    headers = {k.lower(): v for k, v in response.headers.items()}
    for name in list(headers):
        if name in TOOLBAR_HEADERS or name.startswith("djdt"):
            del headers[name]
    return response.status_code, headers, body


def both(
    path: str, between: Callable[[], None] | None = None, **kwargs: Any
) -> tuple[Any, tuple[int, dict[str, str], bytes]]:
    """The same request with our panels (a ToolbarRun) and without them (its snapshot)."""
    client = Client(raise_request_exception=False)
    run = run_with_toolbar(client, path, **kwargs)
    with_ours = snapshot(run.response)
    if between is not None:
        between()
    with override_settings(DEBUG_TOOLBAR_PANELS=panels_without_ours()):
        plain = run_with_toolbar(Client(raise_request_exception=False), path, **kwargs)
        assert not any(p.panel_id in PANEL_IDS for p in plain.toolbar.enabled_panels)
        without = snapshot(plain.response)
    assert with_ours == without, "our panels changed the response"
    return run, without


PANEL_IDS = ("SamplingProfilerPanel", "LineMemoryPanel", "ModelInstancesPanel", "ExplainPanel")


def text(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def assert_others_fine(run: Any, *, but: str) -> None:
    """A fault in one panel leaves the other three measuring."""
    for panel_id in PANEL_IDS:
        if panel_id != but:
            html = run.content(panel_id)
            assert "djdt-perf-error" not in html, (panel_id, text(html)[:500])


# -- engine not installed --------------------------------------------------------------


def test_vmprof_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vmprof", None)  # import vmprof -> ImportError
    monkeypatch.setattr(engine_choice, "installed_vmprof_version", lambda: None)
    # An interpreter where vmprof would run (on 3.11/3.12 it never does: no hint there).
    monkeypatch.setattr(engine_choice, "VMPROF_SAFETY", {sys.version_info[:2]: {"0.6.0": True}})
    with override_settings(DEBUG_TOOLBAR_PERF={"SAMPLING": {"ENGINE": "vmprof"}}):
        run, _ = both("/r/page/")
    shown = text(run.content("SamplingProfilerPanel"))
    assert "vmprof is not installed" in shown
    assert 'pip install "django-debug-toolbar-perf[vmprof]"' in shown
    assert run.record("SamplingProfilerPanel")["samples"] >= 0  # the thread sampler still ran
    assert_others_fine(run, but="SamplingProfilerPanel")


def test_memory_profiler_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """memory-profiler only adds its @profile functions: the panel measures without it."""
    monkeypatch.setitem(sys.modules, "memory_profiler", None)
    run, _ = both("/r/page/")
    record = run.record("LineMemoryPanel")
    assert record["functions"] and record["memory_profiler"] is False
    shown = text(run.content("LineMemoryPanel"))
    assert "memory-profiler is not installed: it is optional" in shown
    assert "not available" not in run.subtitle("LineMemoryPanel")
    assert_others_fine(run, but="LineMemoryPanel")


#: RSS is the line-memory backend that may need psutil (the default, "heap", never does).
RSS = {"LINE_MEMORY": {"BACKEND": "rss"}}


def test_psutil_missing_on_linux_is_not_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The RSS backend reads /proc/self/statm on Linux: psutil is not needed there."""
    real = availability.module_installed
    monkeypatch.setattr(availability, "module_installed", lambda n: n != "psutil" and real(n))
    with override_settings(DEBUG_TOOLBAR_PERF=RSS):
        run, _ = both("/r/page/")
    assert run.record("LineMemoryPanel")["backend_how"] == "/proc/self/statm"


def test_psutil_reported_missing_where_there_is_no_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off Linux (no /proc/self/statm) the RSS backend reads with psutil: then, and only then,
    it is needed, and the panel says so."""
    real = availability.module_installed
    monkeypatch.setattr(availability, "module_installed", lambda n: n != "psutil" and real(n))
    monkeypatch.setattr(line_memory_sources, "STATM", "/proc/self/no-such-file")
    with override_settings(DEBUG_TOOLBAR_PERF=RSS):
        run, _ = both("/r/page/")
    shown = text(run.content("LineMemoryPanel"))
    assert "needs psutil, which is not installed" in shown
    assert 'pip install "django-debug-toolbar-perf[memory]"' in shown
    assert run.subtitle("LineMemoryPanel") == "not available"
    assert_others_fine(run, but="LineMemoryPanel")


def test_pympler_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pympler", None)
    run, _ = both("/r/page/")
    record = run.record("ModelInstancesPanel")
    assert record["total"] >= 5  # counting needs only Django
    shown = text(run.content("ModelInstancesPanel"))
    assert "Pympler" in shown and 'pip install "django-debug-toolbar-perf[pympler]"' in shown


# -- an engine raising inside -------------------------------------------------------------


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected engine failure")


def test_sampler_fails_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampling_panel, "start_session", _boom)  # as the panel calls it
    run, _ = both("/r/page/")
    shown = text(run.content("SamplingProfilerPanel"))
    assert "injected engine failure" in shown and "start" in shown
    assert not thread_engine.HUB.sessions  # nothing is being sampled (the thread may be parked)
    assert_others_fine(run, but="SamplingProfilerPanel")


def test_sampler_thread_dies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(thread_engine.ThreadSampler, "sample", _boom)
    switch = sys.getswitchinterval()
    # The thread sampler by name: where vmprof is safe (3.10) "auto" would run vmprof.
    with override_settings(DEBUG_TOOLBAR_PERF={"SAMPLING": {"ENGINE": "thread"}}):
        run, _ = both("/r/page/")
    assert sys.getswitchinterval() == switch  # the shortened GIL switch interval is restored
    assert "The sampler thread stopped early: RuntimeError: injected engine failure" in text(
        run.content("SamplingProfilerPanel")
    )


def test_line_memory_reader_raises_inside_the_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worst place: an exception in a trace callback would surface in the view's code."""
    real = line_memory_session.make_source

    def failing_source(backend: str) -> Any:
        source = real(backend)
        calls = iter(range(1_000_000))
        read = source.read

        def flaky() -> int:
            if next(calls) >= 2:  # the start reads work, the first line event fails
                raise OSError("injected: /proc/self/statm unreadable")
            return read()

        source.read = flaky  # type: ignore[method-assign]
        return source

    monkeypatch.setattr(line_memory_session, "make_source", failing_source)  # as it is called
    run, _ = both("/r/page/")
    assert sys.gettrace() is None or "coverage" in repr(sys.gettrace())
    shown = text(run.content("LineMemoryPanel"))
    assert "injected: /proc/self/statm unreadable" in shown
    assert_others_fine(run, but="LineMemoryPanel")


def test_instances_hook_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instances.Collector, "on_instance", _boom)
    run, _ = both("/r/page/")
    shown = text(run.content("ModelInstancesPanel"))
    assert "injected engine failure" in shown
    assert_others_fine(run, but="ModelInstancesPanel")


def test_explain_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture.CaptureSession, "explain_all", _boom)
    run, _ = both("/r/page/")
    shown = text(run.content("ExplainPanel"))
    assert "injected engine failure" in shown
    assert capture.current_session() is None  # the capture is unbound all the same
    assert_others_fine(run, but="ExplainPanel")


def test_explain_capture_raises_per_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while recording a statement never fails the statement; the panel says so."""
    monkeypatch.setattr(capture, "sql_info", _boom)
    monkeypatch.setattr(capture, "_SQL_INFO", {})  # SQL seen by earlier tests is cached
    run, _ = both("/r/page/")
    shown = text(run.content("ExplainPanel"))
    assert "injected engine failure" in shown


# -- the hook slot taken by another tool -----------------------------------------------------


@contextmanager
def other_tracer() -> Iterator[Callable[..., Any]]:
    """A trace function of another tool (a debugger, coverage) in this thread."""
    previous = sys.gettrace()
    calls = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        calls.append(event)
        return None

    sys.settrace(tracer)
    try:
        yield tracer
    finally:
        sys.settrace(previous)
    assert calls, "the other tool's tracer never ran"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.10/3.11 trace with sys.settrace")
def test_line_memory_trace_function_taken() -> None:
    with other_tracer() as tracer:
        run, _ = both("/r/page/")
        assert sys.gettrace() is tracer  # left in place, never replaced or removed
    shown = text(run.content("LineMemoryPanel"))
    assert "Another trace function is active in this thread" in shown
    assert_others_fine(run, but="LineMemoryPanel")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_line_memory_monitoring_ids_taken() -> None:
    mon = sys.monitoring
    taken = [i for i in line_memory.TOOL_IDS if mon.get_tool(i) is None]
    for i in taken:
        mon.use_tool_id(i, "another tool")
    try:
        run, _ = both("/r/page/")
        assert all(mon.get_tool(i) == "another tool" for i in taken)
    finally:
        for i in taken:
            mon.free_tool_id(i)
    shown = text(run.content("LineMemoryPanel"))
    assert "Every sys.monitoring tool id is in use" in shown
    assert_others_fine(run, but="LineMemoryPanel")


def test_vmprof_held_by_another_request() -> None:
    assert vmprof_engine._vmprof_lock.acquire(blocking=False)
    try:
        with override_settings(DEBUG_TOOLBAR_PERF={"SAMPLING": {"ENGINE": "vmprof"}}):
            run, _ = both("/r/page/")
    finally:
        vmprof_engine._vmprof_lock.release()
    record = run.record("SamplingProfilerPanel")
    verdict, _ = engine_choice.vmprof_verdict(sys.version_info[:2], "0.6.0")
    shown = text(run.content("SamplingProfilerPanel"))
    if engine_choice.installed_vmprof_version() and verdict != "crashes":
        assert record["busy"] and "Profiler busy" in shown
    else:  # vmprof is never started here: the reason is shown instead
        assert "thread sampler" in shown


@pytest.mark.parametrize("receiver", [False, True], ids=["no-receiver", "with-receiver"])
def test_post_init_send_wrapped_by_another_tool(
    monkeypatch: pytest.MonkeyPatch, receiver: bool
) -> None:
    """Another tool wraps ``post_init.send`` after ours: counted once, no loop, theirs runs.

    Before the fix, our next install() wrapped their wrapper, which called our older hook,
    which called theirs again: RecursionError in every Model() once a receiver existed.
    """
    received = []
    if receiver:

        def on_init(sender: Any, **kwargs: Any) -> None:
            received.append(sender)

        post_init.connect(on_init, weak=False, dispatch_uid="rel-test")
        monkeypatch.setattr(
            "tests.reliability.test_faults._disconnect",
            lambda: post_init.disconnect(dispatch_uid="rel-test"),
        )
    Client().get("/r/page/")  # installs our hook
    assert instances_hook.installed()
    ours = post_init.send
    seen = []

    def theirs(sender: Any, **named: Any) -> Any:
        seen.append(sender)
        return ours(sender, **named)

    post_init.send = theirs  # type: ignore[method-assign]
    try:
        run, _ = both("/r/page/")
    finally:
        _remove_foreign_send()
    assert seen, "the other tool's wrapper was bypassed"
    record = run.record("ModelInstancesPanel")
    counts = {m["label"]: m["count"] for m in record["models"]}
    assert counts.get("shop.Category") == 5, counts
    _disconnect()
    if receiver:
        assert received


def _remove_foreign_send() -> None:
    """Undo the other tool's wrapper and our hook above it: Django's own send, hook reinstalled.

    Restoring only ``post_init.send`` (as monkeypatch would) left our hook installed with the
    removed wrapper still recorded as the send it forwards to, for every later test.
    """
    instances_hook.uninstall()  # ours on top goes; the wrapper it had wrapped comes back
    post_init.__dict__.pop("send", None)  # the wrapper goes: Django's bound method again
    instances_hook.install()
    assert instances_hook._orig_send.__self__ is post_init


def _disconnect() -> None:
    """Replaced by the test that connects a receiver."""


def test_another_execute_wrapper_in_the_view() -> None:
    """A project's own execute_wrapper (Django's documented hook) and ours compose."""
    run, _ = both("/r/page/", HTTP_X_WRAP="1")
    assert run.record("ExplainPanel")["statements"] >= 2


# -- the database fails during EXPLAIN ---------------------------------------------------


def test_database_error_during_explain() -> None:
    run, _ = both("/r/explain-fails/")
    record = run.record("ExplainPanel")
    failed = [s for s in record["shapes"] if "djdt_perf_gone" in s["sql"] and s["kind"] == "select"]
    assert failed and failed[0]["plan_error"] and "djdt_perf_gone" in failed[0]["plan_error"]
    assert "no such table" in text(run.content("ExplainPanel"))


@pytest.mark.postgres
@pytest.mark.django_db(databases=["default", "postgres"])
def test_database_error_during_explain_postgresql() -> None:
    run, _ = both("/r/explain-fails/?db=postgres")
    record = run.record("ExplainPanel")
    failed = [s for s in record["shapes"] if "djdt_perf_gone" in s["sql"] and s["kind"] == "select"]
    assert failed and failed[0]["plan_error"]
    assert "djdt_perf_gone" in text(run.content("ExplainPanel"))


@pytest.fixture
def pg_categories() -> Iterator[None]:
    from shop.models import Category

    Category.objects.using("postgres").bulk_create(Category(name=f"Pg {i}") for i in range(3))
    yield


@pytest.mark.postgres
@pytest.mark.django_db(databases=["default", "postgres"], transaction=True)
def test_aborted_postgresql_transaction(pg_categories: None) -> None:
    conn = connections["postgres"]
    states = []

    def reset() -> None:
        # The panel left the aborted transaction exactly as the view left it.
        states.append(conn.connection.info.transaction_status.name)
        conn.rollback()
        conn.set_autocommit(True)

    try:
        run, _ = both("/r/aborted/", between=reset)
    finally:
        reset()
    assert states == ["INERROR", "INERROR"]
    shown = text(run.content("ExplainPanel"))
    assert "the transaction was aborted by an earlier error" in shown


@pytest.mark.postgres
@pytest.mark.django_db(databases=["default", "postgres"], transaction=True)
def test_error_inside_atomic_postgresql(pg_categories: None) -> None:
    run, _ = both("/r/aborted-atomic/")
    record = run.record("ExplainPanel")
    bad = [s for s in record["shapes"] if "djdt_perf_no_such_table" in s["sql"]]
    assert bad and bad[0]["errors"] == 1 and bad[0]["skipped"] == "the statement failed"
    assert "the statement failed" in text(run.content("ExplainPanel"))


# -- the view and its response -------------------------------------------------------------


def test_view_raises() -> None:
    run, (status, _, body) = both("/r/raises/")
    assert status == 500 and b"the view failed on purpose" in body
    for panel_id in PANEL_IDS:
        run.content(panel_id)  # renders (valid HTML) from the store
    assert run.record("ExplainPanel")["statements"] >= 1
    assert "ValueError" in text(run.content("SamplingProfilerPanel")) or run.record(
        "SamplingProfilerPanel"
    )


def test_view_raises_propagates_the_same_exception() -> None:
    with pytest.raises(ValueError, match="the view failed on purpose"):
        run_with_toolbar(Client(), "/r/raises/")
    with (
        override_settings(DEBUG_TOOLBAR_PANELS=panels_without_ours()),
        pytest.raises(ValueError, match="the view failed on purpose"),
    ):
        run_with_toolbar(Client(), "/r/raises/")


def test_streaming_response() -> None:
    run, (status, _, body) = both("/r/streaming/")
    assert status == 200 and b"Cat 0" in body
    for panel_id in PANEL_IDS:
        run.content(panel_id)
    assert run.record("ModelInstancesPanel")["total"] == 5


def test_json_response() -> None:
    run, (status, headers, body) = both("/r/json/")
    assert status == 200 and headers["content-type"] == "application/json"
    assert body.startswith(b'{"categories"')
    for panel_id in PANEL_IDS:
        run.content(panel_id)
    assert run.record("ModelInstancesPanel")["total"] == 5
