"""Views for the reliability tests: faults a real project meets, and probes of our hooks."""

from __future__ import annotations

import collections
import ctypes
import gc
import os
import re
import sys
import tempfile
import threading
import tracemalloc
from typing import Any

from django.db import DatabaseError, connection, connections, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from shop.models import Category, Product


def page(request: HttpRequest) -> HttpResponse:
    """Builds a few model instances and runs two query shapes: every panel has work."""
    if request.headers.get("X-Wrap"):  # a project's own execute_wrapper around the work
        seen: list[str] = []

        def project_wrapper(execute: Any, sql: str, *args: Any) -> Any:
            seen.append(sql)
            return execute(sql, *args)

        with connection.execute_wrapper(project_wrapper):
            response = _page()
        assert len(seen) == 2, seen
        return response
    return _page()


def _page() -> HttpResponse:
    names = [c.name for c in Category.objects.order_by("pk")]
    count = Product.objects.filter(published=True).count()
    data = [str(i) for i in range(2000)]
    return HttpResponse(
        f"<html><body><p>{', '.join(names)}</p><p>{count} {len(data)}</p></body></html>"
    )


def raises(request: HttpRequest) -> HttpResponse:
    list(Category.objects.all())
    raise ValueError("the view failed on purpose")


def streaming(request: HttpRequest) -> StreamingHttpResponse:
    names = [c.name for c in Category.objects.order_by("pk")]
    return StreamingHttpResponse(
        iter([b"<html><body>", ", ".join(names).encode(), b"</body></html>"])
    )


def json_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"categories": [c.name for c in Category.objects.order_by("pk")]})


def explain_fails(request: HttpRequest) -> HttpResponse:
    """A statement that runs, on a table gone before the end of the request: EXPLAIN fails."""
    alias = request.GET.get("db", "default")
    with connections[alias].cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE djdt_perf_gone (n integer)")
        cursor.execute("INSERT INTO djdt_perf_gone (n) VALUES (1), (2)")
        cursor.execute("SELECT n FROM djdt_perf_gone WHERE n > 0")
        rows = cursor.fetchall()
        cursor.execute("DROP TABLE djdt_perf_gone")
    return HttpResponse(f"<html><body>{len(rows)} rows</body></html>")


def aborted(request: HttpRequest) -> HttpResponse:
    """Leaves the PostgreSQL transaction aborted (an error caught without a savepoint)."""
    conn = connections["postgres"]
    transaction.set_autocommit(False, using="postgres")
    names = [c.name for c in Category.objects.using("postgres").order_by("pk")]
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT * FROM djdt_perf_no_such_table")
    except DatabaseError as exc:
        error = type(exc).__name__
    return HttpResponse(f"<html><body>{len(names)} {error}</body></html>")


def aborted_atomic(request: HttpRequest) -> HttpResponse:
    """An error inside atomic() caught by the view: Django rolls the block back."""
    try:
        with transaction.atomic(using="postgres"):
            list(Category.objects.using("postgres").all())
            with connections["postgres"].cursor() as cursor:
                cursor.execute("SELECT * FROM djdt_perf_no_such_table")
    except DatabaseError as exc:
        error = type(exc).__name__
    return HttpResponse(f"<html><body>{error}</body></html>")


# -- probes: what of ours is active while the view runs ----------------------------------


def sampler_busy() -> bool:
    from debug_toolbar_perf.sampling import thread as thread_engine

    return bool(thread_engine.HUB.sessions)


def hooks_active() -> dict[str, Any]:
    """Every hook this package can install, as seen from inside a view."""
    from debug_toolbar_perf.explain import capture as explain_capture
    from debug_toolbar_perf.instances import hook as instances_hook
    from debug_toolbar_perf.line_memory import state as line_memory

    found: dict[str, Any] = {
        "gettrace": repr(sys.gettrace()) if sys.gettrace() is not None else None,
        "switchinterval": sys.getswitchinterval(),
        # The sampler thread parks between profiled requests (blocked on a lock: no
        # wake-ups, no GIL requests); it is a hook only while it samples a request.
        "sampler_threads": [
            t.name
            for t in threading.enumerate()
            if t.name.startswith("debug-toolbar-perf") and sampler_busy()
        ],
        "collector_bound": instances_hook.COLLECTOR.get() is not None,
        "execute_wrappers": {a: len(connections[a].execute_wrappers) for a in connections},
        # The ExplainPanel's execute wrapper stays on a connection once used, inert unless
        # a capture is bound to the current context (like the instances hook).
        "explain_bound": explain_capture.current_session() is not None,
        "monitoring": None,
        "vmprof_enabled": False,
    }
    if sys.version_info >= (3, 12):
        found["monitoring"] = {
            i: sys.monitoring.get_tool(i)
            for i in range(6)
            if sys.monitoring.get_tool(i) == line_memory.TOOL_NAME
        }
    vmprof = sys.modules.get("vmprof")
    if vmprof is not None:
        found["vmprof_enabled"] = bool(vmprof.is_enabled())
    return found


def probe(request: HttpRequest) -> HttpResponse:
    found = hooks_active()
    names = [c.name for c in Category.objects.all()]  # an instance and a query to catch
    found["categories"] = len(names)
    found["queries_wrapped"] = int(found["explain_bound"])
    return (
        JsonResponse(found)
        if request.GET.get("json")
        else HttpResponse(
            "<html><body><pre>" + JsonResponse(found).content.decode() + "</pre></body></html>"
        )
    )


async def aprobe(request: HttpRequest) -> HttpResponse:
    """The probe run in the event-loop thread under ASGI (where async views run)."""
    return JsonResponse(hooks_active())


def any_path(request: HttpRequest, rest: str) -> HttpResponse:
    """Any path at all (the sampling panel names its EXPORT_DIR file after it)."""
    return page(request)


# -- memory of the server process (tests/reliability/soak.py) ------------------------------

_baseline: list[Any] = []


def _mallinfo() -> dict[str, int]:
    """glibc's heap: bytes in use vs free but kept (fragmentation), when glibc is there."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        fields = ["arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                  "uordblks", "fordblks", "keepcost"]  # fmt: skip

        class MallInfo2(ctypes.Structure):
            _fields_ = [(f, ctypes.c_size_t) for f in fields]

        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        return {f: getattr(info, f) for f in ("arena", "hblkhd", "uordblks", "fordblks")}
    except (OSError, AttributeError):
        return {}


def _pymalloc() -> dict[str, int]:
    """pymalloc's arenas (mmapped, 1 MiB each, freed only when empty) vs bytes in use."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    wanted = {
        "arenas": "# arenas allocated current",
        "arenas_highwater": "# arenas highwater mark",
        "allocated_bytes": "# bytes in allocated blocks",
        "available_bytes": "# bytes in available blocks",
    }
    found = {}
    for key, label in wanted.items():
        m = re.search(re.escape(label) + r"\s*=\s*([\d,]+)", text)
        if m:
            found[key] = int(m.group(1).replace(",", ""))
    return found


def _status_kib() -> dict[str, int]:
    """RSS split as the kernel counts it: anonymous, file-backed, shared memory."""
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon", "RssFile", "RssShmem", "VmData", "Threads")):
                key, value = line.split(":", 1)
                found[key] = int(value.split()[0])
    return found


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


def _our_containers() -> dict[str, int]:
    """len() of every module-level container of this package (caches, registries)."""
    sizes = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith("debug_toolbar_perf") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, type) or (callable(value) and not hasattr(value, "__len__")):
                continue
            try:
                n = len(value)
            except Exception:
                continue
            if n:
                sizes[f"{name}.{attr}"] = n
    return sizes


def memstats(request: HttpRequest) -> JsonResponse:
    """What the process holds: RSS, malloc, gc objects by type, our caches, the store.

    ``?trim=1`` first returns free heap to the OS (malloc_trim): what RSS drops by was
    fragmentation, not live data. ``?snapshot=base`` keeps a tracemalloc snapshot;
    ``?snapshot=diff`` lists the top growth since it (start the server with
    PYTHONTRACEMALLOC=<frames>).
    """
    from debug_toolbar.store import get_store

    gc.collect()
    found: dict[str, Any] = {"rss_kib": _rss_kib()}
    if request.GET.get("trim"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        found["rss_kib_after_trim"] = _rss_kib()
    objects = gc.get_objects()
    found["gc_objects"] = len(objects)
    found["types"] = collections.Counter(type(o).__qualname__ for o in objects).most_common(40)
    del objects
    found["allocated_blocks"] = sys.getallocatedblocks()
    found["mallinfo"] = _mallinfo()
    found["pymalloc"] = _pymalloc()
    found["status"] = _status_kib()
    found["threads"] = [t.name for t in threading.enumerate()]
    found["fds"] = len(os.listdir("/proc/self/fd"))
    found["ours"] = _our_containers()
    found["store_requests"] = len(list(get_store().request_ids()))
    snapshot = request.GET.get("snapshot")
    if snapshot and tracemalloc.is_tracing():
        now = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        if snapshot == "base" or not _baseline:
            _baseline[:] = [now]
        else:
            stats = now.compare_to(_baseline[0], "traceback")[:25]
            found["growth"] = [
                {"kib": round(s.size_diff / 1024, 1), "count": s.count_diff,
                 "where": [f"{f.filename}:{f.lineno}" for f in s.traceback][-8:]}
                for s in stats
            ]  # fmt: skip
        found["traced_kib"] = tracemalloc.get_traced_memory()[0] // 1024
    return JsonResponse(found)
