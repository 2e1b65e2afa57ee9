"""Performance budgets checked against the stored records of the panels.

One set of checks serves ``perf_budget`` in tests and ``profile_request --max-...`` on the
command line, so both fail with the same message. A message says what broke the budget and
where: the creation site of the instances (file:line, function, code line), the line that
issued a repeated query shape, the plan finding with its suggested fix, the hottest functions
of a slow request. The findings come from the same analysis functions the panels use.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from .runner import Run
from .scope import short_path


def _total(record: Mapping[str, Any]) -> float:
    return float(record.get("total") or 0)


def _statements(record: Mapping[str, Any]) -> float:
    return float(record.get("statements") or 0)


def _wall(record: Mapping[str, Any]) -> float:
    return float(record.get("duration_ms") or 0)


def _num(value: float) -> str:
    return f"{value:,.1f}".removesuffix(".0")


#: The figures ``max_growth`` bounds: short panel name -> (what, figure of a record).
GROWTH = {
    "instances": ("model instances", _total),
    "explain": ("SQL statements", _statements),
    "sampling": ("wall time of the view (ms)", _wall),
}


class PerfBudgetExceeded(AssertionError):
    """A request went over its performance budget; the message says where."""

    def __init__(self, message: str, breaches: list[Breach] | None = None) -> None:
        super().__init__(message)
        self.breaches = list(breaches or [])


@dataclass
class Breach:
    """One broken budget: what, the request, and the lines that explain it."""

    budget: str
    request: str
    summary: str
    details: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"{self.request}: {self.summary}"]
        lines += [f"    {d}" for d in self.details]
        return "\n".join(lines)


@dataclass
class Budget:
    """Limits per request. ``None`` means "no limit" for that figure."""

    max_instances: Mapping[str, int] = field(default_factory=dict)
    max_total_instances: int | None = None
    max_repeated_query_shape: int | None = None
    max_queries: int | None = None
    no_full_scans: bool = False
    no_plan_findings: bool = False
    max_ms: float | None = None
    #: Saved run (``profile_request --save``): stats by short panel name, and its label.
    baseline: Mapping[str, Any] | None = None
    baseline_label: str = "the baseline"
    #: Largest allowed growth against ``baseline`` (0.1: 10%) of instances, queries, time.
    max_growth: float | None = None

    def __post_init__(self) -> None:
        self.max_instances = dict(self.max_instances or {})
        for label, limit in self.max_instances.items():
            if label.count(".") != 1:
                raise ValueError(f"max_instances key {label!r} must be 'app_label.ModelName'")
            _check_limit(f"max_instances[{label!r}]", limit)
        for name in ("max_total_instances", "max_repeated_query_shape", "max_queries", "max_ms"):
            value = getattr(self, name)
            if value is not None:
                _check_limit(name, value)
        if (self.baseline is None) != (self.max_growth is None):
            raise ValueError("baseline= and max_growth= go together")
        if self.max_growth is not None:
            _check_limit("max_growth", self.max_growth)

    def is_empty(self) -> bool:
        return not self.panels()

    def panels(self) -> list[str]:
        """The perf panels whose records these limits need (the cheapest set)."""
        out = []
        if self.max_ms is not None:
            out.append("sampling")
        if self.max_instances or self.max_total_instances is not None:
            out.append("instances")
        if (
            self.max_repeated_query_shape is not None
            or self.max_queries is not None
            or self.no_full_scans
            or self.no_plan_findings
        ):
            out.append("explain")
        for name in GROWTH:
            saved = (self.baseline or {}).get(name) or {}
            if saved.get("record") and name not in out:
                out.append(name)
        return out

    def check(self, runs: Iterable[Run], *, time_of: str = "each") -> list[Breach]:
        """Every breach in ``runs``. ``time_of="median"`` checks max_ms on the median run."""
        runs = list(runs)
        breaches: list[Breach] = []
        for run in runs:
            breaches += self._instances(run)
            breaches += self._queries(run)
            if time_of == "each":
                breaches += self._time(run, None)
        if time_of == "median" and runs and self.max_ms is not None:
            durations = [_duration(r) for r in runs]
            measured = [d for d in durations if d is not None]
            if measured:
                median = statistics.median(measured)
                closest = min(
                    (r for r, d in zip(runs, durations, strict=True) if d is not None),
                    key=lambda r: abs((_duration(r) or 0) - median),
                )
                breaches += self._time(closest, median)
        if self.baseline is not None and runs:
            breaches += self._growth(runs, time_of)
        return _dedupe(breaches, len(runs))

    # -- growth against a saved baseline ----------------------------------------------------

    def _growth(self, runs: list[Run], time_of: str) -> list[Breach]:
        """Instances, queries and time that grew past ``max_growth`` against the baseline,
        with what the features' diffs say changed."""
        from .render.compare import diff

        assert self.baseline is not None and self.max_growth is not None
        out = []
        checked = runs if time_of == "each" else runs[-1:]
        for name, (what, figure) in GROWTH.items():
            base = (self.baseline.get(name) or {}).get("record")
            if not base:
                continue
            for run in runs if name != "sampling" else checked:
                record = run.record(name)
                if not record:
                    continue
                before, after = figure(base), figure(record)
                if name == "sampling" and time_of == "median":
                    durations = [d for d in (_duration(r) for r in runs) if d is not None]
                    after = statistics.median(durations) if durations else after
                if after <= before * (1 + self.max_growth):
                    continue
                made = diff(name, record, base)
                growth = (after - before) / before if before else float("inf")
                out.append(
                    Breach(
                        f"max_growth[{name}]",
                        run.label,
                        f"{what} grew from {_num(before)} to {_num(after)} "
                        f"({growth:+.0%}) against {self.baseline_label}; "
                        f"the budget is +{self.max_growth:.0%}.",
                        list(made.notes[:8]) if made else [],
                    )
                )
        return out

    # -- instances ----------------------------------------------------------------------

    def _instances(self, run: Run) -> list[Breach]:
        if not self.max_instances and self.max_total_instances is None:
            return []
        record = _need(run, "instances")
        from .instances.report import report

        models = {m["label"]: m for m in record.get("models") or []}
        found = report(record)["findings"]
        out = []
        for label, limit in self.max_instances.items():
            model = models.get(label)
            count = int(model["count"]) if model else 0
            if count > limit:
                out.append(
                    Breach(
                        "max_instances",
                        run.label,
                        f"{count:,} {label} instances built; the budget is {limit:,}.",
                        _model_details(model, found),
                    )
                )
        total = int(record.get("total") or 0)
        if self.max_total_instances is not None and total > self.max_total_instances:
            details = []
            for model in (record.get("models") or [])[:3]:
                details.append(f"{model['label']}: {model['count']:,}")
                details += ["  " + d for d in _model_details(model, found, sites=1)]
            out.append(
                Breach(
                    "max_total_instances",
                    run.label,
                    f"{total:,} model instances built; the budget is {self.max_total_instances:,}.",
                    details,
                )
            )
        return out

    # -- queries and plans ----------------------------------------------------------------

    def _queries(self, run: Run) -> list[Breach]:
        wants = (
            self.max_repeated_query_shape is not None
            or self.max_queries is not None
            or self.no_full_scans
            or self.no_plan_findings
        )
        if not wants:
            return []
        record = _need(run, "explain")
        from .conf import get_config
        from .explain.report import report

        shapes = report(record, get_config()["EXPLAIN"]).shapes
        out = []
        statements = int(record.get("statements") or 0)
        if self.max_queries is not None and statements > self.max_queries:
            top = sorted(shapes, key=lambda s: -int(s.get("count") or 0))[:3]
            out.append(
                Breach(
                    "max_queries",
                    run.label,
                    f"{statements:,} SQL statements; the budget is {self.max_queries:,}.",
                    [f"{s['count']:,} x {_short_sql(s['sql'])}  ({_issued(s)})" for s in top],
                )
            )
        if self.max_repeated_query_shape is not None:
            for shape in shapes:
                count = int(shape.get("count") or 0)
                if count > self.max_repeated_query_shape:
                    details = [f"query: {_short_sql(shape['sql'], 200)}"]
                    details += _issued_lines(shape)
                    n1 = next((f for f in shape["findings"] if f["code"] == "n_plus_one"), None)
                    if n1:
                        details += _finding_lines(n1)
                    out.append(
                        Breach(
                            "max_repeated_query_shape",
                            run.label,
                            f"one query shape ran {count:,} times; the budget is "
                            f"{self.max_repeated_query_shape:,}.",
                            details,
                        )
                    )
        if self.no_full_scans or self.no_plan_findings:
            for shape in shapes:
                for finding in shape["findings"]:
                    full = finding["code"] == "full_scan"
                    if not (self.no_plan_findings or (self.no_full_scans and full)):
                        continue
                    budget = "no_full_scans" if full and self.no_full_scans else "findings"
                    details = [f"query: {_short_sql(shape['sql'], 200)}"]
                    details += _issued_lines(shape)
                    details += _finding_lines(finding)
                    out.append(Breach(budget, run.label, finding["title"] + ".", details))
        return out

    # -- time -------------------------------------------------------------------------------

    def _time(self, run: Run, median: float | None) -> list[Breach]:
        if self.max_ms is None:
            return []
        record = _need(run, "sampling")
        duration = float(record.get("duration_ms") or 0.0)
        measured = median if median is not None else duration
        if measured <= self.max_ms:
            return []
        from .conf import get_config
        from .sampling.calltree import SamplingRecord
        from .sampling.report import report

        what = "median of the runs" if median is not None else "the request"
        details = [f"profiled scope: {record.get('root_label') or '?'}"]
        found = report(cast("SamplingRecord", record), int(get_config()["SAMPLING"]["MIN_SAMPLES"]))
        for row in found.hot_self[:5]:
            details.append(
                f"{row['self_pct']:5.1f}% self  {row['name']}  "
                f"({relpath(row['file'])}:{row['line']})"
            )
        return [
            Breach(
                "max_ms",
                run.label,
                f"{measured:,.1f} ms ({what}); the budget is {self.max_ms:,.1f} ms.",
                details,
            )
        ]


def _dedupe(breaches: list[Breach], runs: int) -> list[Breach]:
    """The same breach in several runs of one request is reported once, with its count."""
    seen: dict[tuple[Any, ...], list[Any]] = {}
    for b in breaches:
        key = (b.budget, b.request, b.summary, tuple(b.details))
        seen.setdefault(key, [b, 0])[1] += 1
    out = []
    for b, n in seen.values():
        if n > 1:
            b.summary += f" (in {n} of {runs} runs)"
        out.append(b)
    return out


def message(breaches: list[Breach]) -> str:
    """The assertion message: one block per breach."""
    noun = "budget" if len(breaches) == 1 else "budgets"
    head = f"Performance {noun} exceeded ({len(breaches)}):"
    return "\n".join([head, *("- " + b.text() for b in breaches)])


def raise_for(breaches: list[Breach]) -> None:
    if breaches:
        raise PerfBudgetExceeded(message(breaches), breaches)


# --- helpers --------------------------------------------------------------------------------


def _check_limit(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, not {value!r}")


def _need(run: Run, panel: str) -> dict[str, Any]:
    """The panel's record, or a clear error saying why it is missing."""
    stats = run.stats.get(panel) or {}
    record = stats.get("record")
    if record:
        return record
    problem = stats.get("problem")
    errors = stats.get("errors") or []
    if problem:
        why = f"{problem.get('message') or problem}"
    elif errors:
        why = f"{errors[0].get('type')}: {errors[0].get('message')}"
    else:
        why = "nothing was recorded"
    raise PerfBudgetExceeded(
        f"{run.label}: the {panel} panel did not measure this request ({why}), so its budget "
        "cannot be checked."
    )


def _duration(run: Run) -> float | None:
    record = run.record("sampling")
    return float(record["duration_ms"]) if record and "duration_ms" in record else None


def relpath(filename: str) -> str:
    """Paths under the current directory are shown relative to it (shorter, clickable); others
    as the panels show them, relative to their library or project (``django/db/...``)."""
    if not filename:
        return "?"
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return short_path(filename)
    return short_path(filename) if rel.startswith("..") else rel


def where(frame: Mapping[str, Any] | None) -> list[str]:
    """``file:line in function`` and the code line of a stored frame."""
    if not frame:
        return ["(no call site recorded)"]
    out = [f"{relpath(frame.get('file') or '')}:{frame.get('line')} in {frame.get('function')}"]
    code = frame.get("code")
    if code:
        out.append(f"    {code}")
    return out


def _model_details(
    model: Mapping[str, Any] | None, found: list[dict[str, Any]], sites: int = 3
) -> list[str]:
    if not model:
        return []
    details: list[str] = []
    for site in (model.get("sites") or [])[:sites]:
        lines = where(site.get("where"))
        details.append(f"{site['count']:,} built at {lines[0]}")
        details += lines[1:]
    for finding in found:
        if finding["model"] == model["label"]:
            details.append(f"finding: {finding['text']}")
            if finding.get("fix"):
                details.append(f"fix: {finding['fix']}")
    if not model.get("sites"):
        details.append("(call sites were not recorded: INSTANCES.SITES is off)")
    return details


def _short_sql(sql: str, limit: int = 120) -> str:
    flat = " ".join((sql or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _issuing_line(shape: Mapping[str, Any]) -> dict[str, Any] | None:
    lines = shape.get("lines") or []
    return next((ln for ln in lines if ln.get("project")), lines[0] if lines else None)


def _issued(shape: Mapping[str, Any]) -> str:
    line = _issuing_line(shape)
    return where(line)[0] if line else "issuing line unknown"


def _issued_lines(shape: Mapping[str, Any]) -> list[str]:
    line = _issuing_line(shape)
    if not line:
        return ["issued from: (unknown)"]
    lines = where(line)
    return [f"issued at {lines[0]}", *lines[1:]]


def _finding_lines(finding: Mapping[str, Any]) -> list[str]:
    out = [f"finding: {finding['title']}. {finding.get('detail') or ''}".rstrip()]
    if finding.get("suggestion"):
        out.append(f"suggested fix: {finding['suggestion']}")
    if finding.get("orm"):
        out.append(f"in Django: {finding['orm']}")
    return out
