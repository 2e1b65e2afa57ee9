"""Across requests: which earlier request each panel compares this one with.

The loop a developer lives in is change, reload, check. Each perf panel stores, with its
stats, a small reference to its *baseline*: by default the previous request of the same view
(same resolved handler and HTTP method) that this panel recorded in this process and that the
toolbar's store still holds. Any other stored request can be chosen instead (the ``perf_compare``
endpoint). The Δ itself is computed at render time by the feature's ``diff.py`` from the two
stored records, so nothing but the reference is stored twice.

The index is process-local and bounded: the toolbar's store keeps only ids and JSON, and
reading every stored panel back to find the previous request of a view would cost a full JSON
decode per stored request.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypedDict

from .records import Stats
from .store import stored_json_stats, stored_request_ids, stored_stats

#: Entries kept per panel (the toolbar's store keeps 25 requests by default).
MAX_ENTRIES = 200


class BaselineRef(TypedDict):
    """What a panel stores about its baseline (about 100 bytes as JSON)."""

    request_id: str
    method: str
    path: str
    at: int  # when the baseline was recorded (time.time(), seconds)


@dataclass(frozen=True)
class Entry:
    """One recorded request of one panel, as the index remembers it."""

    request_id: str
    label: str
    method: str
    path: str
    at: float

    def ref(self) -> BaselineRef:
        return {
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path[:200],
            "at": int(self.at),
        }


_lock = threading.Lock()
_index: dict[str, deque[Entry]] = {}
#: the same entries by request id (what the index holds, no more)
_by_id: dict[str, dict[str, Entry]] = {}


def _stored_ids() -> set[str]:
    """The ids the toolbar's store holds, read once per lookup (one query with the
    DatabaseStore or CacheStore, instead of one per remembered request)."""
    try:
        return set(stored_request_ids())
    except Exception:  # a database or cache store that is unreachable: no baseline
        return set()


def remember(panel_id: str, request_id: str, label: str, method: str, path: str) -> Entry:
    """Note that ``panel_id`` recorded ``request_id`` (a view's request, with a record)."""
    prime(panel_id)
    entry = Entry(request_id, label, method, path, time.time())
    with _lock:
        entries = _index.setdefault(panel_id, deque(maxlen=MAX_ENTRIES))
        by_id = _by_id.setdefault(panel_id, {})
        if len(entries) == MAX_ENTRIES:
            dropped = entries.popleft()
            if by_id.get(dropped.request_id) is dropped:
                del by_id[dropped.request_id]
        entries.append(entry)
        by_id[request_id] = entry
    return entry


class RequestRef(TypedDict):
    """What a panel stores about its own request, so that another process (runserver's
    autoreloader starts one on every code change) can index it again: about 60 bytes."""

    method: str
    path: str
    at: int


def request_ref(request: Any) -> RequestRef:
    return {
        "method": str(request.method or "GET"),
        "path": str(request.path)[:200],
        "at": int(time.time()),
    }


_primed: set[str] = set()


def prime(panel_id: str) -> None:
    """Once per process and panel: index the requests the toolbar's store already holds.

    runserver's autoreloader starts a new process on every code change, so the index starts
    empty just when the developer reloads to check a fix. With a store that outlives the
    process (DatabaseStore, or CacheStore on a shared cache) the earlier requests are still
    there: read each one's stats for this panel once (its view label and ``RequestRef``)."""
    with _lock:
        if panel_id in _primed:
            return
        _primed.add(panel_id)
    try:
        found = []
        for request_id in stored_request_ids():
            stats = stored_json_stats(request_id, panel_id)
            ref = stats.get("request")
            label = (stats.get("target") or {}).get("label")
            if stats.get("record") and isinstance(ref, dict) and label:
                found.append(
                    Entry(request_id, str(label), ref["method"], ref["path"], float(ref["at"]))
                )
    except Exception:  # an unreachable store: start with an empty index
        return
    found.sort(key=lambda e: e.at)
    with _lock:
        entries = _index.setdefault(panel_id, deque(maxlen=MAX_ENTRIES))
        known = {e.request_id for e in entries}
        for entry in reversed(found):
            if entry.request_id not in known and len(entries) < MAX_ENTRIES:
                entries.appendleft(entry)
        _by_id[panel_id] = {e.request_id: e for e in entries}


def _same_view(panel_id: str, label: str, method: str, before: str | None) -> Iterator[Entry]:
    """Stored requests of the same view and method, newest first, scanned lazily: the
    previous request of a view is usually the last or next-to-last entry, so a request's
    baseline costs a few steps, not a walk of the whole index (28 us at 200 entries)."""
    prime(panel_id)
    with _lock:
        entries = list(_index.get(panel_id, ()))
        known = before is not None and before in _by_id.get(panel_id, {})
    stored = _stored_ids()
    seen = not known  # with ``before`` known: only what was recorded before it
    for e in reversed(entries):
        if not seen:
            seen = e.request_id == before
            continue
        if (
            e.request_id != before
            and e.label == label
            and e.method == method
            and e.request_id in stored
        ):
            yield e


def same_view(panel_id: str, label: str, method: str, *, before: str | None = None) -> list[Entry]:
    """Stored requests of the same view and method, newest first (``before``: excluded, and
    only entries recorded before it)."""
    return list(_same_view(panel_id, label, method, before))


def previous(panel_id: str, request_id: str, label: str, method: str) -> BaselineRef | None:
    """The default baseline of ``request_id``: the newest earlier stored request of its view."""
    found = next(_same_view(panel_id, label, method, request_id), None)
    return found.ref() if found else None


def choices(panel_id: str, request_id: str, limit: int = 25) -> list[Entry]:
    """Every other request ``panel_id`` recorded that the store still holds, newest first
    (what the panel offers as a baseline, whatever its view)."""
    prime(panel_id)
    with _lock:
        entries = list(_index.get(panel_id, ()))
    stored = _stored_ids()
    out = [e for e in reversed(entries) if e.request_id != request_id and e.request_id in stored]
    return out[:limit]


def entry(panel_id: str, request_id: str) -> Entry | None:
    with _lock:
        return _by_id.get(panel_id, {}).get(request_id)


def clear() -> None:
    """Forget every request (tests, and a cleared store)."""
    with _lock:
        _index.clear()
        _by_id.clear()
        _recent.clear()
        _primed.clear()


#: Records this process just stored, newest last: the next request of a view compares with
#: its predecessor while the toolbar renders its sidebar, and reading that back from the store
#: rebuilt a toolbar and decoded the JSON (0.1-0.3 ms per panel, on every request). The
#: record is the one that was stored (``check_json`` proved it survives the round trip).
_recent: dict[tuple[str, str], Any] = {}
RECENT_KEPT = 16


def keep(panel_id: str, request_id: str, record: Any) -> None:
    """Hold ``record`` (just stored by ``panel_id``) for the next request's comparison."""
    with _lock:
        _recent[(panel_id, request_id)] = record
        while len(_recent) > RECENT_KEPT:
            del _recent[next(iter(_recent))]


def baseline_record(request_id: str, panel_id: str) -> tuple[Any, str | None]:
    """(record, why not): the stored record of ``panel_id`` for ``request_id``."""
    with _lock:
        recent = _recent.get((panel_id, request_id))
    if recent is not None and request_id in _stored_ids():
        return recent, None
    stats = stored_stats(request_id, panel_id)
    if stats is None:
        return None, "The baseline request is no longer in the toolbar's store."
    record = stats.get("record")
    if not record:
        return None, "The baseline request has no record for this panel."
    return record, None


# -- what a feature's diff.py returns ------------------------------------------------------


@dataclass
class Comparison:
    """One panel's change against its baseline, computed at render time by ``<feature>/diff.py``.

    ``headline`` goes into the nav subtitle when ``significant``; ``notes`` are the sentences
    a developer reads first ("N+1 on shop.Category fixed: -12 queries"); ``rows`` the table
    under them (``columns`` names its cells).
    """

    headline: str
    significant: bool
    notes: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    noise: str = ""  # how the significance was decided, said under the table
    baseline: dict[str, Any] = field(default_factory=dict)  # set by PerfPanel


def signed_delta(n: float, digits: int = 0) -> str:
    """``+3``, ``−299``, ``±0``: a change written with its sign (a real minus sign)."""
    if n == 0:
        return "±0"
    text = f"{abs(n):,.{digits}f}"
    return f"+{text}" if n > 0 else f"\u2212{text}"


def arrow(before: float, after: float, digits: int = 0) -> str:
    """``300 → 1``: a before/after pair."""
    return f"{before:,.{digits}f} \u2192 {after:,.{digits}f}"


def stats_ref(stats: Stats) -> BaselineRef | None:
    ref: Any = stats.get("baseline")
    if isinstance(ref, dict) and isinstance(ref.get("request_id"), str):
        found: BaselineRef = ref  # type: ignore[assignment]  # stored by PerfPanel
        return found
    return None
