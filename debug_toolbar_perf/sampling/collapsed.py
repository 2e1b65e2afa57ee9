"""Collapsed stacks ("a;b;c 12" per line) for flamegraph.pl and inferno, from a stored record."""

from __future__ import annotations

import os
from typing import Any

from .calltree import SamplingRecord, iter_paths


def frame_label(fn: list[Any]) -> str:
    name, filename, first_line, _project = fn
    label = f"{name} ({os.path.basename(filename)}:{first_line})" if filename else str(name)
    # ';' separates frames and the last space separates the count: keep both out.
    return label.replace(";", ":").replace("\n", " ")


def to_collapsed(record: SamplingRecord) -> str:
    functions = record.get("functions") or []
    labels = [frame_label(fn) for fn in functions]
    counts: dict[str, int] = {}
    for path, weight in iter_paths(record):
        line = ";".join("(pruned)" if fi == -2 else labels[fi] for fi in path)
        counts[line] = counts.get(line, 0) + round(weight)
    return "".join(f"{stack} {n}\n" for stack, n in counts.items() if n > 0)
