"""SamplingProfilerPanel: a sampling CPU/wall profile of the view, as an icicle flame graph.

Thin wiring: the session (``session.py``) runs vmprof where it is known safe
(``choice.py``, ``vmprof_engine.py``), else the thread sampler (``thread.py``); the
tree and findings are ``calltree.py``, the exports ``speedscope.py`` and ``collapsed.py``.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from typing import Any

from django.http import HttpRequest, HttpResponse

from .. import baseline
from ..availability import EngineProblem
from ..base import ExportFile, PerfPanel, router_follower
from ..baseline import Comparison
from ..conf import get_config
from ..endpoints import safe_filename
from ..scope import DEFERRED_NOTE, ViewTarget, deferred_render, is_project_file
from . import calltree, choice, collapsed, speedscope, vmprof_engine
from .calltree import SamplingRecord
from .diff import diff
from .follow import FOLLOW_MIDDLEWARE_NOTE, ViewInvocation
from .merge import merge_records
from .report import SamplingReport, headline, hot_functions, report
from .session import SamplingSession, start_session


def is_async_view(target: ViewTarget) -> bool:
    """An async view: under WSGI Django runs it via async_to_sync in another thread."""
    return any(code.co_flags & inspect.CO_COROUTINE for code in target.codes)


class SamplingProfilerPanel(PerfPanel):
    title = "Sampling profiler"
    nav_icon = "debug_toolbar_perf/img/sampling.svg"  # type: ignore[assignment]  # DDT types it None
    template = "debug_toolbar_perf/panels/sampling.html"
    extra_scripts = ("debug_toolbar_perf/js/sampling.js",)
    export_formats = (
        ("speedscope", "speedscope JSON"),
        ("collapsed", "collapsed stacks"),
        ("vmprof", "raw vmprof file"),
    )

    def engine_problem(self) -> EngineProblem | None:
        """Only gevent blocks sampling; a missing vmprof is a note (the thread sampler runs)."""
        refusal = choice.gevent_refusal()
        if refusal is not None:
            return EngineProblem(refusal, choice.GEVENT_FIX)
        return None

    @classmethod
    def check_warnings(cls) -> list[EngineProblem]:
        """vmprof is worth installing only where ``auto`` would start it (not on 3.11/3.12)."""
        if choice.installed_vmprof_version() is not None or not choice.vmprof_would_run():
            return []
        return [
            EngineProblem(
                "SamplingProfilerPanel would use vmprof on this Python, and it is not "
                "installed: the thread sampler runs instead (fewer samples per second).",
                choice.VMPROF_EXTRA,
            )
        ]

    def start(self, request: HttpRequest, target: ViewTarget) -> SamplingSession:
        self._cpu0 = time.thread_time()  # the request thread's CPU time, for the Δ
        self._cpu_ms: float | None = None
        config = get_config()
        cfg = config["SAMPLING"]
        name = str(getattr(self.toolbar, "request_id", "") or f"req{time.time_ns()}")
        follow_why = "asgi" if self.asgi else ("async-view" if is_async_view(target) else None)
        if follow_why is not None:
            # The view runs in another thread (an executor thread, an event loop) and maybe
            # among other requests: follow this request's view call wherever it runs.
            follow = ViewInvocation(request, target.scope_codes) if target.codes else None
            session = start_session(
                cfg["ENGINE"],
                cfg["MODE"],
                float(cfg["INTERVAL_MS"]),
                name,
                follow=follow,
                follow_why=follow_why,
                switch_ms=cfg["SWITCH_INTERVAL_MS"],
            )
            if config["SCOPE"] == "middleware" and follow is not None:
                session.notes.insert(0, FOLLOW_MIDDLEWARE_NOTE)
            return session
        frame = sys._getframe(1)
        anchor_code = PerfPanel.process_request.__code__
        while frame is not None and frame.f_code is not anchor_code:
            frame = frame.f_back  # type: ignore[assignment]
        return start_session(
            cfg["ENGINE"],
            cfg["MODE"],
            float(cfg["INTERVAL_MS"]),
            name,
            frame,
            vmprof_names=cfg["VMPROF_NAMES"],
            switch_ms=cfg["SWITCH_INTERVAL_MS"],
        )

    async def astart(self, session: SamplingSession) -> None:
        """Under ASGI, before the view: an async view's frame is this request's when this
        panel's coroutine awaits it (found by identity, no locals read); see
        :meth:`.ViewInvocation.anchored`."""
        sampler = session.sampler
        follow = getattr(sampler, "follow", None)
        if follow is None:
            return
        anchor_code = PerfPanel._finish_async.__code__
        frame: Any = sys._getframe(1)
        while frame is not None and frame.f_code is not anchor_code:
            frame = frame.f_back
        follow.anchor_code = anchor_code
        follow.anchor = frame

    def stop(self, session: SamplingSession) -> None:
        session.stop()
        if not session.followed:  # a followed view ran in another thread: no CPU figure
            self._cpu_ms = round((time.thread_time() - self._cpu0) * 1000.0, 3)

    def build_record(
        self, request: HttpRequest, response: HttpResponse, session: SamplingSession
    ) -> SamplingRecord:
        raw = session.result()
        target: ViewTarget = self._target
        config = get_config()
        codes = {(c.co_filename, c.co_firstlineno) for c in target.scope_codes}
        record = calltree.make_record(
            raw,
            engine_reason=session.choice.reason,
            # A followed view call: the engine already cut every stack at it.
            scope="view" if session.followed else config["SCOPE"],
            view_code=codes,
            view_label=target.label,
            anchor=session.anchor,
            anchor_depth=session.anchor_depth,
            max_nodes=int(config["SAMPLING"]["MAX_NODES"]),
            is_project=is_project_file,
            vmprof_missing=session.choice.vmprof_missing,
            busy=session.busy,
            followed=session.followed,
        )
        follower = router_follower(self.toolbar)
        if follower is not None and follower.found is not None:
            record["notes"].append(
                f"{target.label} handed the request to {follower.found.label}, "
                "which did the work (followed)."
            )
        record["cpu_ms"] = getattr(self, "_cpu_ms", None)
        rendered = deferred_render(response)
        if rendered is not None and record["scope"] == "view":
            record["notes"].append(DEFERRED_NOTE.format(template=rendered))
        record["method"] = request.method or "GET"
        record["path"] = request.path
        record["export_file"] = self._write_export(config["EXPORT_DIR"], record)
        return record

    def _write_export(self, directory: str | None, record: SamplingRecord) -> str | None:
        """Write the speedscope file into EXPORT_DIR, named like Werkzeug's profiler does."""
        if not directory:
            return None
        path = record["path"].strip("/").replace("/", ".") or "root"
        name = safe_filename(
            f"{record['method']}.{path}.{record['duration_ms']:.0f}ms.{time.time():.0f}"
        )
        os.makedirs(directory, exist_ok=True)
        target = os.path.join(directory, f"{name}.speedscope.json")
        with open(target, "wb") as fh:
            fh.write(speedscope.dumps(record, f"{record['method']} {record['path']}"))
        return target

    def make_report(self, record: SamplingRecord) -> SamplingReport:
        return report(record, int(get_config()["SAMPLING"]["MIN_SAMPLES"]))

    def make_diff(self, record: SamplingRecord, base: SamplingRecord) -> Comparison:
        return diff(record, base)

    def merged(self, stats: dict[str, Any]) -> dict[str, Any] | None:
        """The last ``SAMPLING.MERGE_LAST`` stored requests of this view merged into one
        profile (None: no earlier request, or merging is off)."""
        last = int(get_config()["SAMPLING"]["MERGE_LAST"])
        request_id = getattr(self.toolbar, "request_id", None)
        record = stats["record"]
        if last < 2 or not request_id or record.get("not_sampled"):
            return None
        label = (stats.get("target") or {}).get("label", "")
        earlier = baseline.same_view(
            self.panel_id, label, record.get("method") or "GET", before=request_id
        )
        records = [record]
        for entry in earlier:
            if len(records) >= last:
                break
            other, _ = baseline.baseline_record(entry.request_id, self.panel_id)
            if other and not other.get("not_sampled"):
                records.append(other)
        if len(records) < 2:
            return None
        merged = merge_records(records)
        return {
            "requests": len(records),
            "samples": merged["samples"],
            "duration_ms": merged["duration_ms"],
            "hot_self": hot_functions(merged, "self", limit=10),
            "record": merged,
        }

    def get_context(self, stats: dict[str, Any]) -> dict[str, Any]:
        record = stats["record"]
        found: SamplingReport = self.report(stats)
        overhead = record.get("overhead_ms") or {}
        duration = float(record.get("duration_ms") or 0)
        overhead_total = found.overhead_ms
        return {
            "r": record,
            "thin": found.thin,
            "hot_self": found.hot_self,
            "hot_total": found.hot_total,
            "hot_lines": found.hot_lines,
            "split": found.split,
            "own_hooks": found.own_hooks,
            "overhead": sorted(overhead.items()),
            "overhead_total": overhead_total,
            "overhead_pct": 100.0 * overhead_total / duration if duration else 0.0,
            "vmprof_extra": choice.VMPROF_EXTRA,
            "merged": self.guard("merge", self.merged, stats),
            "tree": {
                "functions": record.get("functions") or [],
                "nodes": record.get("nodes") or [],
                "samples": record.get("samples") or 0,
                "label": record.get("root_label") or "",
            },
        }

    def subtitle(self, stats: dict[str, Any]) -> str:
        # The toolbar renders its sidebar during the request: the headline alone, not the
        # whole report (hot lines, splits, own hooks), which the content computes later.
        return headline(stats["record"])

    def export_links(self) -> list[dict[str, str]]:
        links = super().export_links()
        record = (self.get_stats() or {}).get("record") or {}
        if record.get("not_sampled") or not record.get("samples"):
            return []  # nothing to download: an empty profile is no profile
        if not record.get("raw_file"):
            links = [link for link in links if link["format"] != "vmprof"]
        return links

    def export(self, fmt: str, stats: dict[str, Any]) -> ExportFile | None:
        record = stats["record"]
        base = safe_filename(
            f"{record.get('method', 'GET')}.{(record.get('path') or '/').strip('/') or 'root'}"
        )
        if fmt == "speedscope":
            name = f"{record.get('method')} {record.get('path')}"
            return ExportFile(
                f"{base}.speedscope.json", "application/json", speedscope.dumps(record, name)
            )
        if fmt == "collapsed":
            return ExportFile(
                f"{base}.collapsed.txt", "text/plain", collapsed.to_collapsed(record).encode()
            )
        if fmt == "vmprof":
            path = vmprof_engine.raw_path(record.get("raw_file") or "")
            if path is None:
                reason = (
                    "vmprof did not run for this request (thread sampler)."
                    if not record.get("raw_file")
                    else f"Only the last {vmprof_engine.RAW_KEEP} raw vmprof files are kept; "
                    "this one was removed."
                )
                return ExportFile(f"{base}.vmprof-unavailable.txt", "text/plain", reason.encode())
            with open(path, "rb") as fh:
                return ExportFile(f"{base}.vmprof", "application/octet-stream", fh.read())
        return None
