"""What changed in the profile since the baseline: Δ wall and CPU time, and the functions that
got faster or slower (a diff table of self time).

Sampled figures are noisy, and wall time on a busy machine is mostly waiting for a core, so
the verdict rests on the request thread's CPU time where both requests have it (WSGI), on wall
time otherwise. A time change counts when one side is ``TIME_RATIO`` times the other and they
differ by ``TIME_MIN_MS``: one request's time moves by up to 60% between unchanged reloads on a
shared machine (a garbage collection, a busy core). A project function's self time is
estimated as its share of the samples times that time; its change counts when it passes the
same bounds and is ``Z`` standard errors of the estimate (a sample count is Poisson: n
samples of d ms each have a standard error of sqrt(n) * d).
``docs/benchmarks/compare-noise.md`` measures how often unchanged reloads still cross them.
"""

from __future__ import annotations

import math
from typing import Any

from ..baseline import Comparison, signed_delta
from .calltree import SamplingRecord
from .report import _PACKAGE_DIR, hot_functions

TIME_RATIO = 2.0
TIME_MIN_MS = 5.0
Z = 3.5
ROWS = 15


def time_changed(before: float, after: float) -> bool:
    """Whether a time moved past the noise bounds (a ratio either way, and absolute)."""
    low, high = sorted((max(before, 0.0), max(after, 0.0)))
    return high - low >= TIME_MIN_MS and high >= TIME_RATIO * low


def time_z(a: float, per_a: float, b: float, per_b: float) -> float:
    """z of the change of a sampled time from ``a`` samples of ``per_a`` ms each to ``b``
    samples of ``per_b`` ms (a count is Poisson: its variance is the count)."""
    var = a * per_a**2 + b * per_b**2
    return 0.0 if var <= 0 else (b * per_b - a * per_a) / math.sqrt(var)


def _by_function(record: SamplingRecord) -> dict[Any, dict[str, Any]]:
    """Functions by self samples, without this package's own hooks (the other panels' cost
    inside the view moves with what they measured, not with the user's code)."""
    out: dict[Any, dict[str, Any]] = {}
    for r in hot_functions(record, "self", limit=10_000):
        if not str(r["file"]).startswith(_PACKAGE_DIR):
            # by name and file: an edit above a function moves its first line, not its identity
            out.setdefault((r["name"], r["file"]), r)
    return out


def diff(record: SamplingRecord, base: SamplingRecord) -> Comparison:
    """The change from ``base`` (the baseline's record) to ``record``."""
    n_a, n_b = float(base.get("samples") or 0), float(record.get("samples") or 0)
    wall_a, wall_b = float(base.get("duration_ms") or 0), float(record.get("duration_ms") or 0)
    cpu_a, cpu_b = base.get("cpu_ms"), record.get("cpu_ms")
    both_cpu = cpu_a is not None and cpu_b is not None
    basis_a = float(cpu_a) if both_cpu else wall_a  # type: ignore[arg-type]
    basis_b = float(cpu_b) if both_cpu else wall_b  # type: ignore[arg-type]
    before, now = _by_function(base), _by_function(record)
    changes = []
    for key in set(before) | set(now):
        a, b = before.get(key), now.get(key)
        self_a, self_b = float(a["self"]) if a else 0.0, float(b["self"]) if b else 0.0
        pct_a, pct_b = (a["self_pct"] if a else 0.0), (b["self_pct"] if b else 0.0)
        per_a, per_b = (basis_a / n_a if n_a else 0.0), (basis_b / n_b if n_b else 0.0)
        ms_a, ms_b = self_a * per_a, self_b * per_b
        z = time_z(self_a, per_a, self_b, per_b)
        project = bool((a or b or {}).get("project"))  # a library's share moves with load
        real = project and time_changed(ms_a, ms_b) and abs(z) >= Z
        changes.append((abs(ms_b - ms_a), key, pct_a, pct_b, ms_a, ms_b, real))
    # Biggest change first; among equal changes (an unchanged reload: all zero) the hottest
    # function first, not the first by name.
    changes.sort(key=lambda c: (-c[0], -max(c[4], c[5]), c[1]))
    rows = []
    notes = []
    for _, key, pct_a, pct_b, ms_a, ms_b, real in changes[:ROWS]:
        word = ("slower" if ms_b > ms_a else "faster") if real else "within noise"
        rows.append(
            [
                key[0],
                f"{pct_a:.0f}% \u00b7 {ms_a:,.1f} ms",
                f"{pct_b:.0f}% \u00b7 {ms_b:,.1f} ms",
                f"{signed_delta(ms_b - ms_a, 1)} ms",
                word,
            ]
        )
        if real:
            notes.append(f"{key[0]} {word}: {ms_a:,.1f} \u2192 {ms_b:,.1f} ms self time")
    cpu = both_cpu and time_changed(basis_a, basis_b)
    wall = not both_cpu and time_changed(wall_a, wall_b)
    times = [
        ["wall time (ms)", f"{wall_a:,.1f}", f"{wall_b:,.1f}", signed_delta(wall_b - wall_a, 1)]
    ]
    if cpu_a is not None and cpu_b is not None:
        times.append(
            ["CPU time (ms)", f"{cpu_a:,.1f}", f"{cpu_b:,.1f}", signed_delta(cpu_b - cpu_a, 1)]
        )
    times.append(["samples", f"{n_a:,.0f}", f"{n_b:,.0f}", signed_delta(n_b - n_a)])
    pct = 100 * (wall_b - wall_a) / wall_a if wall_a else 0.0
    cpu_pct = 100 * (basis_b - basis_a) / basis_a if basis_a else 0.0
    if wall:
        headline = f"{signed_delta(wall_b - wall_a, 1)} ms ({signed_delta(pct)}%)"
    elif cpu:
        headline = f"CPU {signed_delta(basis_b - basis_a, 1)} ms ({signed_delta(cpu_pct)}%)"
    elif notes:
        headline = notes[0]
    else:
        headline = f"{wall_b:,.1f} ms, was {wall_a:,.1f} ms"
    return Comparison(
        headline=headline,
        significant=wall or cpu or bool(notes),
        notes=notes,
        columns=["Function / total", "Before", "After", "\u0394", ""],
        rows=[[*t, ""] for t in times] + rows,
        noise=f"Noise bounds, on {'CPU' if both_cpu else 'wall'} time: a time changes when "
        f"one side is {TIME_RATIO:g}\u00d7 the other and {TIME_MIN_MS:g} ms apart; a project "
        f"function's self time (its share of the samples \u00d7 that time) when it also moves "
        f"by {Z:g} standard errors of a sample count. Other rows are shown, not judged.",
    )
