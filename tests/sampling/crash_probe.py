"""Crash probe: run the sampling panel N times on an object/template-heavy view.

Usage: python tests/sampling/crash_probe.py [N] [ENGINE]
Exits 0 and prints "profiles: N" when every request was profiled; a crashed engine
kills the process with a signal instead (negative return code in the parent).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from debug_toolbar.toolbar import DebugToolbar  # noqa: E402
from django.conf import settings  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    engine = sys.argv[2] if len(sys.argv) > 2 else "auto"
    setup_test_environment()
    created: list = []
    DebugToolbar._created.connect(lambda sender, toolbar, **kw: created.append(toolbar), weak=False)
    engines = set()
    with override_settings(
        ROOT_URLCONF="tests.sampling.sampling_urls",
        DEBUG_TOOLBAR_CONFIG={
            **settings.DEBUG_TOOLBAR_CONFIG,
            "DISABLE_PANELS": {
                "debug_toolbar.panels.profiling.ProfilingPanel",
                "debug_toolbar_perf.line_memory.panel.LineMemoryPanel",
                "debug_toolbar_perf.instances.panel.ModelInstancesPanel",
                "debug_toolbar_perf.explain.panel.ExplainPanel",
            },
        },
        DEBUG_TOOLBAR_PERF={"SAMPLING": {"ENGINE": engine, "INTERVAL_MS": 0.5}},
    ):
        client = Client()
        for _ in range(n):
            response = client.get("/objects/?n=4000")
            assert response.status_code == 200
            stats = created[-1].get_panel_by_id("SamplingProfilerPanel").get_stats()
            assert stats["record"], stats
            assert not stats["errors"], stats["errors"]
            engines.add(stats["record"]["engine"])
    print(f"profiles: {n} engines: {sorted(engines)} python: {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
