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

from ..availability import EngineProblem
from ..base import ExportFile, PerfPanel
from ..conf import get_config
from ..endpoints import safe_filename
from ..scope import ViewTarget, is_project_file
from . import calltree, choice, collapsed, speedscope, vmprof_engine
from .calltree import SamplingRecord
from .follow import FOLLOW_MIDDLEWARE_NOTE, ViewInvocation
from .report import SamplingReport, report
from .session import SamplingSession, start_session


def is_async_view(target: ViewTarget) -> bool:
    """An async view: under WSGI Django runs it via async_to_sync in another thread."""
    return any(code.co_flags & inspect.CO_COROUTINE for code in target.codes)


class SamplingProfilerPanel(PerfPanel):
    title = "Sampling profiler"
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
        config = get_config()
        cfg = config["SAMPLING"]
        name = str(getattr(self.toolbar, "request_id", "") or f"req{time.time_ns()}")
        follow_why = "asgi" if self.asgi else ("async-view" if is_async_view(target) else None)
        if follow_why is not None:
            # The view runs in another thread (an executor thread, an event loop) and maybe
            # among other requests: follow this request's view call wherever it runs.
            follow = ViewInvocation(request, target.codes) if target.codes else None
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

    def stop(self, session: SamplingSession) -> None:
        session.stop()

    def build_record(
        self, request: HttpRequest, response: HttpResponse, session: SamplingSession
    ) -> SamplingRecord:
        raw = session.result()
        target: ViewTarget = self._target
        config = get_config()
        codes = {(c.co_filename, c.co_firstlineno) for c in target.codes}
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
            "tree": {
                "functions": record.get("functions") or [],
                "nodes": record.get("nodes") or [],
                "samples": record.get("samples") or 0,
                "label": record.get("root_label") or "",
            },
        }

    def subtitle(self, stats: dict[str, Any]) -> str:
        return str(self.report(stats).headline)

    def export_links(self) -> list[dict[str, str]]:
        links = super().export_links()
        record = (self.get_stats() or {}).get("record") or {}
        if record.get("not_sampled"):
            return []
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
