"""Helpers for records: plain JSON-native data, checked once when recorded.

django-debug-toolbar 6+ serialises every panel's stats to JSON and renders the
panel later from ``get_stats()`` alone, on a fresh panel instance. A tuple comes
back as a list and non-string keys are dropped or raise, so records are made of
dicts with string keys, lists, strings, finite numbers, booleans and None only.
"""

from __future__ import annotations

import json
import linecache
import math
import traceback
from typing import Any, TypedDict

JSONValue = Any


class ErrorRecord(TypedDict):
    """A failure of our own code, shown inside the panel (never on the user's page)."""

    stage: str
    type: str
    message: str
    traceback: str


class TargetJSON(TypedDict):
    """What the measurement covered: the view's label and kind (``scope.ViewTarget``)."""

    label: str
    kind: str


class ProblemJSON(TypedDict):
    """Why a panel cannot measure here, and how to fix it."""

    message: str
    fix: str


class Stats(TypedDict, total=False):
    """What every perf panel stores in the toolbar's store (``{}`` before it records).

    ``record`` is the feature's own record (each feature types it: ``SamplingRecord``,
    ``LineMemoryRecord``, ``InstancesRecord``, ``ExplainRecord``), or None when the
    panel could not measure.
    """

    version: int
    target: TargetJSON
    problem: ProblemJSON | None
    record: Any
    errors: list[ErrorRecord]
    baseline: dict[str, Any] | None  # baseline.BaselineRef: the previous request of the view
    request: dict[str, Any]  # baseline.RequestRef: this request's method, path and time


class Frame(TypedDict):
    """One line of code, the same everywhere a panel names one (a site, a stack frame)."""

    file: str
    line: int
    function: str
    code: str  # the source line, stripped (empty when it cannot be read)
    project: bool


def frame_json(filename: str, line: int, function: str, project: bool) -> Frame:
    """A :class:`Frame` with its source line read once (``linecache``)."""
    return {
        "file": filename,
        "line": line,
        "function": function,
        "code": linecache.getline(filename, line).strip()[:300],
        "project": project,
    }


class RecordError(TypeError):
    """A record holds something the toolbar's JSON store would change or reject."""


def check_json(value: Any, path: str = "stats") -> None:
    """Raise :class:`RecordError` unless ``value`` survives a JSON round trip unchanged.

    The round trip itself is the fast check (C code, ~2.7x faster than walking the record
    in Python on every request); only a record that fails it is walked, to name the culprit.
    """
    try:
        if json.loads(json.dumps(value, allow_nan=False)) == value:
            return
    except (TypeError, ValueError, RecursionError):
        pass
    _walk(value, path)


def _walk(value: Any, path: str) -> None:
    """Find what in ``value`` JSON would change or reject, and say where."""
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RecordError(f"{path} is {value!r}, which JSON cannot hold")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise RecordError(f"{path} has non-string key {key!r}")
            _walk(item, f"{path}[{key!r}]")
        return
    raise RecordError(f"{path} is a {type(value).__name__}, not JSON-native")


def error_record(stage: str, exc: BaseException) -> ErrorRecord:
    """What the panel shows when its own code failed at ``stage``."""
    return {
        "stage": stage,
        "type": type(exc).__name__,
        "message": str(exc)[:2000],
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-8000:],
    }
