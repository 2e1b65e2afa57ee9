"""Across runs outside the browser: the panels' Δ for two runs, saved run files, merged runs.

``profile_request --save FILE`` writes a run's stored stats (the very records the panels
render) to a JSON file; ``--compare FILE`` and ``perf_budget(baseline=FILE)`` read it back and
each feature's ``diff.py`` says what changed, as the panels do in the browser.
``--repeat N`` merges the sampling records of every run (``sampling/merge.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..baseline import Comparison

FORMAT = "debug-toolbar-perf-run"
VERSION = 1


def diff(name: str, record: Any, base: Any) -> Comparison | None:
    """Panel ``name``'s (``runner.PANELS`` short name) change from ``base`` to ``record``."""
    if not record or not base:
        return None
    if name == "sampling":
        from ..sampling.diff import diff as sampling_diff

        return sampling_diff(record, base)
    if name == "memory":
        from ..line_memory.diff import diff as memory_diff

        return memory_diff(record, base)
    if name == "instances":
        from ..instances.diff import diff as instances_diff

        return instances_diff(record, base)
    if name == "explain":
        from ..conf import get_config
        from ..explain.diff import diff as explain_diff

        return explain_diff(record, base, get_config()["EXPLAIN"])
    return None


def merge_sampling(records: Sequence[Any]) -> Any:
    """One sampling record holding the samples of every record (runs of one view)."""
    from ..sampling.merge import merge_records

    return merge_records([r for r in records if r and not r.get("not_sampled")])


_TITLES = {
    "sampling": "Sampling profiler",
    "memory": "Line memory",
    "instances": "Model instances",
    "explain": "EXPLAIN",
}


def text(
    stats: Mapping[str, Mapping[str, Any]],
    base: Mapping[str, Mapping[str, Any]],
    against: str,
) -> str:
    """The Δ of every panel both sides recorded, as the terminal prints it."""
    out = [f"== \u0394 against {against} " + "=" * max(3, 80 - len(against))]
    for name, title in _TITLES.items():
        now, before = stats.get(name) or {}, base.get(name) or {}
        if not now.get("record") or not before.get("record"):
            continue
        made = diff(name, now["record"], before["record"])
        if made is None:
            continue
        verdict = made.headline if made.significant else "no significant change"
        out.append(f"  {title}: {verdict}")
        out += [f"    {note}" for note in made.notes[:10]]
        widths = [max(len(str(row[i])) for row in made.rows) for i in range(4)] if made.rows else []
        for row in made.rows[:15]:
            cells = [str(c) for c in row[:4]]
            first = cells[0][:60].ljust(min(widths[0], 60))
            rest = "  ".join(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
            tail = f"  {row[4]}" if len(row) > 4 and row[4] else ""
            out.append(f"      {first}  {rest}{tail}")
        if made.noise:
            out.append(f"    ({made.noise})")
    if len(out) == 1:
        out.append("  No panel recorded both runs.")
    return "\n".join(out) + "\n"


def save(path: str, label: str, stats: Mapping[str, Any]) -> None:
    """Write a run's stored stats (by short panel name) for a later ``--compare``."""
    body = {"format": FORMAT, "version": VERSION, "label": label, "stats": dict(stats)}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(body, fh, separators=(",", ":"))


def load(path: str) -> tuple[str, dict[str, Any]]:
    """(label, stats by short panel name) of a file written by :func:`save`."""
    with open(path, encoding="utf-8") as fh:
        body = json.load(fh)
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved run (profile_request --save)")
    if body.get("version") != VERSION:
        raise ValueError(f"{path} is a saved run of version {body.get('version')}, not {VERSION}")
    return str(body.get("label") or path), dict(body.get("stats") or {})
