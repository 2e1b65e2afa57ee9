"""Panels used only to test the shared base: each fails at a chosen stage."""

from __future__ import annotations

from typing import Any

from debug_toolbar_perf.base import ExportFile, PerfPanel


class StageFailure(RuntimeError):
    pass


class ProbePanel(PerfPanel):
    """Records the view target and the response status; fails where ``fail_at`` says."""

    title = "Probe"
    template = "testapp/probe.html"
    export_formats = (("txt", "Text"),)
    fail_at: str | None = None
    started = 0
    stopped = 0

    def _maybe_fail(self, stage: str) -> None:
        if self.fail_at == stage:
            raise StageFailure(f"probe failed in {stage} <script>alert(1)</script>")

    def start(self, request: Any, target: Any) -> dict[str, Any]:
        type(self).started += 1
        self._maybe_fail("start")
        return {"label": target.label}

    def stop(self, session: Any) -> None:
        type(self).stopped += 1
        self._maybe_fail("stop")

    def build_record(self, request: Any, response: Any, session: Any) -> dict[str, Any]:
        self._maybe_fail("record")
        if self.fail_at == "json":
            return {"bad": {1, 2}}
        return {"label": session["label"], "status": response.status_code}

    def get_context(self, stats: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("render")
        return {"label": stats["record"]["label"]}

    def subtitle(self, stats: dict[str, Any]) -> str:
        self._maybe_fail("subtitle")
        return f"status {stats['record']['status']}"

    def export(self, fmt: str, stats: dict[str, Any]) -> ExportFile | None:
        if fmt != "txt":
            return None
        return ExportFile(
            "../../etc/passwd probe.txt", "text/plain", stats["record"]["label"].encode()
        )
