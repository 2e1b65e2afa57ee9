"""Overhead of SamplingProfilerPanel on demo pages: toolbar on with the panel off vs on.

Usage: python benchmarks/sampling_overhead.py [ROUNDS] [PATH ...]
Runs interleaved rounds (off, thread, vmprof-if-safe) through the real toolbar with the
test client, prints the median view time per configuration, the ratio to 'off', the
achieved sampling rate and the per-request overhead the panel itself recorded.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from debug_toolbar.toolbar import DebugToolbar  # noqa: E402
from django.conf import settings  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from debug_toolbar_perf.sampling import choice as engine_choice  # noqa: E402

OTHERS = {
    "debug_toolbar.panels.profiling.ProfilingPanel",
    "debug_toolbar.panels.redirects.RedirectsPanel",
    "debug_toolbar_perf.line_memory.panel.LineMemoryPanel",
    "debug_toolbar_perf.instances.panel.ModelInstancesPanel",
    "debug_toolbar_perf.explain.panel.ExplainPanel",
}
SAMPLING = "debug_toolbar_perf.sampling.panel.SamplingProfilerPanel"


def config(name: str) -> dict:
    disabled = set(OTHERS)
    if name == "off":
        disabled.add(SAMPLING)
    return {**settings.DEBUG_TOOLBAR_CONFIG, "DISABLE_PANELS": disabled}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    paths = sys.argv[2:] or ["/cpu/"]
    setup_test_environment()
    created: list = []
    DebugToolbar._created.connect(lambda sender, toolbar, **kw: created.append(toolbar), weak=False)
    version = engine_choice.installed_vmprof_version()
    engines = ["off", "thread"]
    if version and engine_choice.vmprof_verdict(sys.version_info[:2], version)[0] == "safe":
        engines.append("vmprof")
    client = Client()
    print(f"Python {sys.version.split()[0]}, vmprof {version}, engines {engines}")
    for path in paths:
        times: dict[str, list[float]] = {e: [] for e in engines}
        rates: dict[str, list[float]] = {e: [] for e in engines}
        over: dict[str, list[float]] = {e: [] for e in engines}
        disable: list[float] = []
        for r in range(rounds + 2):
            for name in engines:
                engine = "thread" if name == "off" else name
                with override_settings(
                    DEBUG_TOOLBAR_CONFIG=config(name),
                    DEBUG_TOOLBAR_PERF={"SAMPLING": {"ENGINE": engine}},
                ):
                    gc.collect()
                    t0 = time.perf_counter()
                    response = client.get(path)
                    elapsed = time.perf_counter() - t0
                assert response.status_code == 200
                if r < 2:
                    continue  # warm-up
                times[name].append(elapsed * 1000)
                if name != "off":
                    rec = created[-1].get_panel_by_id("SamplingProfilerPanel").get_stats()["record"]
                    rates[name].append(rec["rate_hz"])
                    over[name].append(sum(rec["overhead_ms"].values()))
                    if "disable" in rec["overhead_ms"]:
                        disable.append(rec["overhead_ms"]["disable"])
        base = statistics.median(times["off"])
        print(f"\n{path}: median request time with the toolbar, {rounds} interleaved rounds")
        for name in engines:
            med = statistics.median(times[name])
            extra = ""
            if name != "off":
                extra = (
                    f"  rate {statistics.median(rates[name]):.0f}/s"
                    f"  recorded overhead {statistics.median(over[name]):.2f} ms"
                )
            print(f"  {name:7s} {med:8.1f} ms  x{med / base:.3f}{extra}")
        if disable:
            print(
                f"  vmprof disable(): median {statistics.median(disable):.1f} ms, "
                f"max {max(disable):.1f} ms"
            )


if __name__ == "__main__":
    main()
