"""The only reader of django-debug-toolbar's store: a stored request's panels and stats.

DDT 6+ keeps each panel's stats as JSON (MemoryStore, DatabaseStore, CacheStore) and
rebuilds a stored request with ``DebugToolbar.fetch(request_id, panel_id)``; a panel then
renders from ``get_stats()`` alone, on a fresh instance. Endpoints, the command, the
standalone page, the baseline index and the tests read stored requests through here, and
nowhere else.
"""

from __future__ import annotations

from typing import Any

from .records import Stats


def stored_toolbar(request_id: str, panel_id: str | None = None) -> Any | None:
    """The toolbar of a stored request (None once the store has evicted it)."""
    from debug_toolbar.toolbar import DebugToolbar

    return DebugToolbar.fetch(request_id, panel_id)


def stored_panel(request_id: str, panel_id: str) -> Any | None:
    """The panel ``panel_id`` of a stored request, or None (evicted, or not configured)."""
    toolbar = stored_toolbar(request_id, panel_id)
    if toolbar is None:
        return None
    try:
        return toolbar.get_panel_by_id(panel_id)
    except KeyError:
        return None


def stored_stats(request_id: str, panel_id: str) -> Stats | None:
    """What ``panel_id`` recorded for a stored request (``{}`` if nothing), or None."""
    panel = stored_panel(request_id, panel_id)
    if panel is None:
        return None
    stats: Stats = panel.get_stats() or {}  # type: ignore[assignment]  # PerfPanel's
    return stats


def stored_request_ids() -> list[str]:
    """The ids the toolbar's store holds (one query with a DatabaseStore or CacheStore)."""
    from debug_toolbar.store import get_store

    return list(get_store().request_ids())


def stored_json_stats(request_id: str, panel_id: str) -> dict[str, Any]:
    """A panel's stats as the store keeps them (decoded JSON, ``{}`` if none), without
    rebuilding the request's toolbar: for reading many stored requests at once."""
    from debug_toolbar.store import get_store

    stats = get_store().panel(request_id, panel_id)
    return stats if isinstance(stats, dict) else {}
