"""Speedscope JSON (https://www.speedscope.app/file-format-schema.json) from a stored record.

One "sampled" profile: each call-tree node with own samples becomes one stack
with its weight in milliseconds (samples x the achieved sampling period), so
speedscope's time axis matches the request.
"""

from __future__ import annotations

import json
from typing import Any

from .calltree import SamplingRecord, iter_paths

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"


def to_speedscope(record: SamplingRecord, name: str = "request") -> dict[str, Any]:
    functions = record.get("functions") or []
    frames: list[dict[str, Any]] = []
    for fn_name, filename, first_line, _project in functions:
        frame: dict[str, Any] = {"name": str(fn_name)}
        if filename:
            frame["file"] = str(filename)
            frame["line"] = int(first_line)
        frames.append(frame)
    pruned_frame = len(frames)
    frames.append({"name": "(pruned)"})
    all_samples = float(record.get("samples") or 0) + float(record.get("outside") or 0)
    duration_ms = float(record.get("duration_ms") or 0)
    per_sample = duration_ms / all_samples if all_samples and duration_ms else 1.0
    samples: list[list[int]] = []
    weights: list[float] = []
    for path, weight in iter_paths(record):
        samples.append([pruned_frame if fi == -2 else fi for fi in path])
        weights.append(round(weight * per_sample, 4))
    total = round(sum(weights), 4)
    return {
        "$schema": SCHEMA_URL,
        "shared": {"frames": frames},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": "milliseconds",
                "startValue": 0,
                "endValue": total,
                "samples": samples,
                "weights": weights,
            }
        ],
        "name": name,
        "activeProfileIndex": 0,
        "exporter": "django-debug-toolbar-perf",
    }


def dumps(record: SamplingRecord, name: str = "request") -> bytes:
    return json.dumps(to_speedscope(record, name), separators=(",", ":")).encode()
