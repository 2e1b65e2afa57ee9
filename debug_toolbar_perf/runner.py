"""Run requests through the real toolbar outside the browser, and read back what it stored.

Shared by ``manage.py profile_request`` and :func:`debug_toolbar_perf.testing.perf_budget`:
both force the toolbar on for a block (whatever ``SHOW_TOOLBAR_CALLBACK``, ``DEBUG`` or the
panel list say), catch every toolbar created inside it (``DebugToolbar._created``, as
django-debug-toolbar's own tests do), and read each panel's stats back from the toolbar's
JSON store (``store.py``) - the very records the panels render in the browser.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.test.utils import override_settings
from django.urls import NoReverseMatch, include, path, reverse

from .store import stored_stats, stored_toolbar

#: Short names (command line, budgets) -> (panel id, dotted class path).
PANELS: dict[str, tuple[str, str]] = {
    "sampling": ("SamplingProfilerPanel", "debug_toolbar_perf.panels.SamplingProfilerPanel"),
    "memory": ("LineMemoryPanel", "debug_toolbar_perf.panels.LineMemoryPanel"),
    "instances": ("ModelInstancesPanel", "debug_toolbar_perf.panels.ModelInstancesPanel"),
    "explain": ("ExplainPanel", "debug_toolbar_perf.panels.ExplainPanel"),
}
ALL_PANELS = tuple(PANELS)
#: The SQL panel feeds the instances panel's N+1 detection (queries per call site).
SQL_PANEL = "debug_toolbar.panels.sql.SQLPanel"


def show_toolbar_always(request: Any) -> bool:
    """SHOW_TOOLBAR_CALLBACK used while the toolbar is forced on."""
    return True


def parse_panels(value: str | Iterable[str]) -> list[str]:
    """``"sampling,explain"`` -> ``["sampling", "explain"]`` (order kept, checked)."""
    names = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name not in PANELS:
            raise ValueError(f"unknown panel {raw.strip()!r}; choose from {', '.join(ALL_PANELS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"no panel chosen; choose from {', '.join(ALL_PANELS)}")
    return out


def _clear_show_toolbar_cache() -> None:
    """DDT 8 caches the callback (``show_toolbar_func_or_path``) and never clears it."""
    from debug_toolbar import middleware

    for name in ("show_toolbar_func_or_path", "get_show_toolbar"):
        func = getattr(middleware, name, None)
        clear = getattr(func, "cache_clear", None)
        if clear is not None:
            clear()


def _toolbar_urls_missing() -> bool:
    try:
        reverse("djdt:render_panel")
    except NoReverseMatch:
        return True
    return False


def _urlconf_with_toolbar() -> types.ModuleType:
    """The project's URLconf plus the toolbar's URLs (absent when DEBUG was False at import,
    e.g. under Django's test runner): the toolbar's own rendering needs them."""
    module = types.ModuleType("debug_toolbar_perf._forced_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("__debug__/", include("debug_toolbar.urls")),
        path("", include(settings.ROOT_URLCONF)),
    ]
    sys.modules[module.__name__] = module
    return module


@contextmanager
def force_toolbar(panels: Iterable[str], *, debug: bool | None = None) -> Iterator[None]:
    """Show the toolbar on every request in the block, with exactly these perf panels on.

    ``debug`` also overrides ``settings.DEBUG`` (the command sets it; budgets in tests do not,
    so the code under test runs as it does in the suite).
    """
    panels = list(panels)
    classes = [PANELS[name][1] for name in panels]
    config = dict(getattr(settings, "DEBUG_TOOLBAR_CONFIG", None) or {})
    config.update(
        {
            "SHOW_TOOLBAR_CALLBACK": show_toolbar_always,
            "DISABLE_PANELS": set(),
            "IS_RUNNING_TESTS": False,
        }
    )
    overrides: dict[str, Any] = {
        "DEBUG_TOOLBAR_CONFIG": config,
        # The SQL panel only where it adds something: the instances panel's N+1 detection.
        "DEBUG_TOOLBAR_PANELS": [SQL_PANEL, *classes] if "instances" in panels else classes,
    }
    if "memory" in panels:
        # The line-memory panel is off by default on 3.10/3.11: here it was asked for.
        perf = dict(getattr(settings, "DEBUG_TOOLBAR_PERF", None) or {})
        perf["LINE_MEMORY"] = {**perf.get("LINE_MEMORY", {}), "ENABLED_BY_DEFAULT": True}
        overrides["DEBUG_TOOLBAR_PERF"] = perf
    if debug is not None:
        overrides["DEBUG"] = debug
    hosts = list(settings.ALLOWED_HOSTS)
    if "testserver" not in hosts and "*" not in hosts:
        overrides["ALLOWED_HOSTS"] = [*hosts, "testserver"]
    with ExitStack() as stack:
        _clear_show_toolbar_cache()
        stack.callback(_clear_show_toolbar_cache)
        stack.enter_context(override_settings(**overrides))
        if _toolbar_urls_missing():
            stack.enter_context(override_settings(ROOT_URLCONF=_urlconf_with_toolbar()))
        yield


@dataclass
class Run:
    """One request's stored stats, by short panel name (what the panels render)."""

    method: str
    path: str
    request_id: str
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: int | None = None
    elapsed_ms: float | None = None

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def record(self, panel: str) -> dict[str, Any] | None:
        return (self.stats.get(panel) or {}).get("record")


def read_run(toolbar: Any, panels: Iterable[str]) -> Run | None:
    """The stats each chosen panel stored for this toolbar's request (None if evicted)."""
    request = toolbar.request
    run = Run(
        method=getattr(request, "method", None) or "GET",
        path=request.get_full_path() if hasattr(request, "get_full_path") else "?",
        request_id=toolbar.request_id,
    )
    for name in panels:
        panel_id = PANELS[name][0]
        if stored_toolbar(toolbar.request_id, panel_id) is None:
            return None
        run.stats[name] = dict(stored_stats(toolbar.request_id, panel_id) or {})
    return run


class ToolbarCapture:
    """Collects the toolbars created while connected; reads each one's stats once complete."""

    def __init__(self, panels: Iterable[str]) -> None:
        self.panels = list(panels)
        self.toolbars: list[Any] = []
        self.runs: list[Run] = []
        self._read = 0

    def _created(self, sender: Any, toolbar: Any, **kwargs: Any) -> None:
        # A new request starts: the previous ones (same thread, test client) are finished,
        # so read them now, before the store's RESULTS_CACHE_SIZE evicts them.
        self.collect()
        self.toolbars.append(toolbar)

    def collect(self, final: bool = False) -> list[Run]:
        """Read every finished toolbar not read yet; ``final`` skips unfinished ones."""
        while self._read < len(self.toolbars):
            toolbar = self.toolbars[self._read]
            if not _finished(toolbar) and not final:
                break  # still running (another thread): read it later
            self._read += 1
            run = read_run(toolbar, self.panels) if _finished(toolbar) else None
            if run is not None:
                self.runs.append(run)
        return self.runs

    def __enter__(self) -> ToolbarCapture:
        from debug_toolbar.toolbar import DebugToolbar

        DebugToolbar._created.connect(self._created, weak=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        from debug_toolbar.toolbar import DebugToolbar

        DebugToolbar._created.disconnect(self._created)
        self.collect(final=True)


def _finished(toolbar: Any) -> bool:
    """True once the middleware has generated the stats of every enabled panel."""
    return bool(getattr(toolbar, "stats", None))


@contextmanager
def capture(panels: Iterable[str], *, debug: bool | None = None) -> Iterator[ToolbarCapture]:
    """Force the toolbar on and collect every request's stored stats."""
    names = list(panels)
    with force_toolbar(names, debug=debug), ToolbarCapture(names) as cap:
        yield cap
