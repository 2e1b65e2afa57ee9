"""SamplingProfilerPanel through the real toolbar: shares, store round trip, exports, bad cases,
threaded server isolation and a crash regression in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from debug_toolbar.toolbar import DebugToolbar
from django.conf import settings
from django.test import override_settings

from debug_toolbar_perf.sampling import choice as engine_choice
from debug_toolbar_perf.sampling import raw as raw_profile
from debug_toolbar_perf.sampling import thread as thread_engine
from debug_toolbar_perf.store import stored_stats
from tests.conftest import assert_valid_html

PANEL = "SamplingProfilerPanel"
OTHER_PANELS = {
    "debug_toolbar.panels.profiling.ProfilingPanel",
    "debug_toolbar.panels.redirects.RedirectsPanel",
    "debug_toolbar_perf.line_memory.panel.LineMemoryPanel",
    "debug_toolbar_perf.instances.panel.ModelInstancesPanel",
    "debug_toolbar_perf.explain.panel.ExplainPanel",
}
URLS = "tests.sampling.sampling_urls"


def perf(**sampling: Any) -> dict[str, Any]:
    general = {k: sampling.pop(k) for k in ("SCOPE", "EXPORT_DIR") if k in sampling}
    return {**general, "SAMPLING": {"ENGINE": "auto", **sampling}}


def share_of(record: dict[str, Any], name: str, key: str = "total") -> float:
    functions = record["functions"]
    weight = sum(
        (h[2] if key == "total" else h[1]) for h in record["hot"] if functions[h[0]][0] == name
    )
    return weight / record["samples"]


@pytest.fixture
def sampling_site():
    # Only the other perf panels are switched off (not removed: the toolbar caches its URLs).
    config = {**settings.DEBUG_TOOLBAR_CONFIG, "DISABLE_PANELS": OTHER_PANELS}
    with override_settings(ROOT_URLCONF=URLS, DEBUG_TOOLBAR_CONFIG=config):
        yield


@pytest.mark.django_db
def test_known_split_is_measured(toolbar_client, sampling_site):
    with override_settings(DEBUG_TOOLBAR_PERF=perf()):
        run = toolbar_client("/split/?scale=3")
    record = run.record(PANEL)
    assert record["scope"] == "view"
    assert record["samples"] >= 30, record["samples"]  # ~160/s on CPU-bound code
    heavy = share_of(record, "heavy_part")
    light = share_of(record, "light_part")
    assert abs(heavy - 0.70) < 0.10, (heavy, light)
    assert abs(light - 0.30) < 0.10, (heavy, light)
    # Rooted at the view: every kept stack starts with the view function.
    functions = record["functions"]
    top_level = [n for n in record["nodes"] if n[0] == 0]
    assert [functions[n[1]][0] for n in top_level] == ["split_view"]
    assert "heavy_part" in run.subtitle(PANEL) or "burn_for" in run.subtitle(PANEL)


@pytest.mark.django_db
def test_demo_cpu_page_finds_slow_primes(toolbar_client):
    run = toolbar_client("/cpu/?n=12000")
    record = run.record(PANEL)
    names = {record["functions"][h[0]][0]: h for h in record["hot"]}
    assert "slow_primes" in names
    # slow_primes is pure Python and dominates this page (>= half of the view's samples).
    assert share_of(record, "slow_primes") > 0.5
    assert "slow_primes" in run.subtitle(PANEL)
    html = run.content(PANEL)
    assert "slow_primes" in html
    assert 'id="djdt-perf-flame-data"' in html
    assert "sampling.js" in " ".join(run.stored_panel(PANEL).scripts)


@pytest.mark.django_db
def test_middleware_scope_keeps_the_chain(toolbar_client, sampling_site):
    with override_settings(DEBUG_TOOLBAR_PERF=perf(SCOPE="middleware")):
        run = toolbar_client("/split/?scale=0.5")
    record = run.record(PANEL)
    assert record["scope"] == "middleware"
    names = [record["functions"][fi][0] for fi in {n[1] for n in record["nodes"] if n[1] >= 0}]
    assert "split_view" in names
    top = {record["functions"][n[1]][0] for n in record["nodes"] if n[0] == 0}
    assert "split_view" not in top  # the view sits under the middleware
    # the panel's own process_request frame and everything above it is cut off (the other
    # perf panels, below it, are disabled here)
    assert "PerfPanel.process_request" not in top
    assert top


@pytest.mark.django_db
def test_store_round_trip_renders_from_json(toolbar_client, sampling_site):
    with override_settings(DEBUG_TOOLBAR_PERF=perf()):
        run = toolbar_client("/split/?scale=0.5")
    stats = run.stats(PANEL)
    json.dumps(stats)  # JSON-native
    live = run.live_panel(PANEL).get_stats()
    assert json.loads(json.dumps(live)) == stats
    html = run.content(PANEL)
    assert "Hottest functions by self samples" in html
    assert "heavy_part" in html
    assert "Why this engine" in html


@pytest.mark.django_db
def test_exports_through_the_endpoint(client, toolbar_client, sampling_site, tmp_path):
    with override_settings(DEBUG_TOOLBAR_PERF=perf(EXPORT_DIR=str(tmp_path))):
        run = toolbar_client("/split/?scale=0.5")
        html = run.content(PANEL)
    links = dict(re.findall(r'href="([^"]+)" download data-format="([^"]+)"', html))
    by_format = {fmt: unescape(url) for url, fmt in links.items()}
    assert {"speedscope", "collapsed"} <= set(by_format)
    record = run.record(PANEL)
    if record["engine"] != "vmprof":
        assert "vmprof" not in by_format
        assert "Raw vmprof file: not available" in html
    doc = json.loads(client.get(by_format["speedscope"]).content)
    assert doc["profiles"][0]["type"] == "sampled"
    text = client.get(by_format["collapsed"]).content.decode()
    assert re.search(r"^split_view \(sampling_urls\.py:\d+\);heavy_part.* \d+$", text, re.M)
    written = list(tmp_path.iterdir())
    assert len(written) == 1
    assert written[0].name.startswith("GET.split.")
    assert written[0].name.endswith(".speedscope.json")
    assert json.loads(written[0].read_text())["shared"]["frames"]


@pytest.mark.django_db
def test_view_raises_profile_kept_sampler_stopped(client, sampling_site):
    before = sys.getswitchinterval()
    created: list[DebugToolbar] = []
    DebugToolbar._created.connect(
        lambda sender, toolbar, **kw: created.append(toolbar), weak=False, dispatch_uid="t-raise"
    )
    try:
        with (
            override_settings(DEBUG_TOOLBAR_PERF=perf()),
            pytest.raises(Exception, match="on purpose"),
        ):
            client.get("/raises/")
    finally:
        DebugToolbar._created.disconnect(dispatch_uid="t-raise")
    assert sys.getswitchinterval() == before
    assert not thread_engine.HUB.sessions  # nothing sampled any more (the thread may be parked)
    session = created[-1].get_panel_by_id(PANEL)._session
    assert session.stopped
    assert session.sampler.result().samples > 0  # the samples of the failed view are there


@pytest.mark.django_db
def test_zero_samples_message(toolbar_client, sampling_site):
    with override_settings(DEBUG_TOOLBAR_PERF=perf(INTERVAL_MS=60_000)):
        run = toolbar_client("/instant/")
    record = run.record(PANEL)
    assert record["samples"] == 0
    html = run.content(PANEL)
    assert "No samples." in html
    assert "djdt-perf-flame-data" not in html
    assert "download data-format" not in html  # no export links for an empty profile
    assert run.subtitle(PANEL) == "no samples"


@pytest.mark.django_db
def test_a_long_interval_leaves_no_long_wait_for_the_next_request(toolbar_client, sampling_site):
    """The shared sampler thread slept out a 60 s interval: the next request, at 2 ms, must
    be sampled from its start (it got 1 sample: the schedule stayed 60 s ahead)."""
    with override_settings(DEBUG_TOOLBAR_PERF=perf(INTERVAL_MS=60_000, ENGINE="thread")):
        toolbar_client("/instant/")
    with override_settings(DEBUG_TOOLBAR_PERF=perf(ENGINE="thread")):
        run = toolbar_client("/split/?scale=1")
    assert run.record(PANEL)["samples"] >= 20


@pytest.mark.django_db
def test_thin_profile_says_how_to_get_more(toolbar_client, sampling_site):
    with override_settings(DEBUG_TOOLBAR_PERF=perf(MIN_SAMPLES=100_000)):
        run = toolbar_client("/split/?scale=0.3")
        html = run.content(PANEL)  # the threshold is read when the panel renders
    assert "Too thin to trust." in html
    assert "INTERVAL_MS" in html


@pytest.mark.django_db
def test_missing_vmprof_is_a_note_not_a_block(toolbar_client, sampling_site, monkeypatch):
    # Simulates an environment without the vmprof distribution, on an interpreter where
    # vmprof would run (safe) and on one where it never does (crashes: no install hint).
    monkeypatch.setattr(engine_choice, "installed_vmprof_version", lambda: None)
    for safe in (True, False):
        monkeypatch.setattr(engine_choice, "VMPROF_SAFETY", {sys.version_info[:2]: {"0.6.0": safe}})
        with override_settings(DEBUG_TOOLBAR_PERF=perf()):
            run = toolbar_client("/split/?scale=0.3")
        stats = run.stats(PANEL)
        assert stats["problem"] is None
        assert stats["record"]["engine"] == "thread"
        html = unescape(run.content(PANEL))
        assert ('pip install "django-debug-toolbar-perf[vmprof]"' in html) is safe


@pytest.mark.django_db
def test_cpu_mode_thread_sampler(toolbar_client, sampling_site):
    with override_settings(DEBUG_TOOLBAR_PERF=perf(MODE="cpu", ENGINE="thread")):
        run = toolbar_client("/split/?scale=1")
    record = run.record(PANEL)
    assert record["mode"] == "cpu"
    assert abs(share_of(record, "heavy_part") - 0.7) < 0.12


@pytest.mark.django_db
def test_long_profile_fits_in_budget(sampling_site):
    """A 60 s profile (60,000 samples over thousands of distinct stacks) stores <= 1 MB of
    stats and renders in <= 200 ms."""
    import random

    from debug_toolbar_perf.sampling import calltree
    from debug_toolbar_perf.sampling.panel import SamplingProfilerPanel
    from debug_toolbar_perf.scope import is_project_file

    rng = random.Random(7)
    funcs = [
        (f"module{i // 40}.func_{i}", f"/srv/app/pkg{i // 40}/mod{i}.py", i) for i in range(4000)
    ]
    raw = raw_profile.RawProfile("thread", "wall", 1.0, duration_s=60.0)
    for _ in range(6_000):  # 6,000 distinct stacks x 10 = 60,000 samples (60 s at 1 kHz)
        depth = rng.randint(5, 60)
        stack = tuple(funcs[rng.randrange(len(funcs))] for _ in range(depth))
        key = ((("view", "/srv/app/views.py", 1), *stack), rng.randint(1, 400))
        raw.stacks[key] = raw.stacks.get(key, 0) + 10
    record = calltree.make_record(
        raw,
        engine_reason="test",
        scope="view",
        view_code={("/srv/app/views.py", 1)},
        view_label="view",
        anchor=None,
        anchor_depth=None,
        max_nodes=5000,
        is_project=is_project_file,
    )
    stats = {
        "version": 1,
        "target": {"label": "view", "kind": "function"},
        "problem": None,
        "record": record,
        "errors": [],
    }
    size = len(json.dumps(stats, separators=(",", ":")))
    assert size <= 1_000_000, size
    assert record["pruned"]["nodes"] > 0 and record["pruned"]["samples"] > 0
    panel = SamplingProfilerPanel.__new__(SamplingProfilerPanel)
    panel.get_stats = lambda: stats  # type: ignore[method-assign]
    panel.toolbar = None
    t0 = time.perf_counter()
    html = panel.content
    elapsed = time.perf_counter() - t0
    assert "Pruned:" in html, html[:2000]
    print(f"stats {size} bytes, render {elapsed * 1000:.1f} ms, pruned {record['pruned']}")
    assert elapsed <= 0.2, elapsed
    assert_valid_html(html)


# --- next to the toolbar's own ProfilingPanel and next to coverage -------------------------


@pytest.mark.django_db
def test_next_to_the_toolbars_profiling_panel(toolbar_client):
    """Both panels on in the same request: both record, neither errors (cProfile takes the
    sys.monitoring profiler slot on 3.12+; our engines use signals or a sampler thread)."""
    config = {
        **settings.DEBUG_TOOLBAR_CONFIG,
        "DISABLE_PANELS": OTHER_PANELS - {"debug_toolbar.panels.profiling.ProfilingPanel"},
    }
    with (
        override_settings(ROOT_URLCONF=URLS, DEBUG_TOOLBAR_CONFIG=config),
        override_settings(DEBUG_TOOLBAR_PERF=perf()),
    ):
        run = toolbar_client("/split/?scale=1")
        assert run.response.status_code == 200
        record = run.record(PANEL)
        assert abs(share_of(record, "heavy_part") - 0.70) < 0.12
        profiling = run.stats("ProfilingPanel")
        assert profiling.get("func_list"), profiling  # cProfile's data is there too
        # (Its tree is cut at PROFILER_MAX_DEPTH, so the view itself may be below the cut.)
        assert all(f.get("func_std_string") for f in profiling["func_list"])


@pytest.mark.slow
@pytest.mark.parametrize("core", ["ctrace", "sysmon"])
def test_works_while_coverage_measures(core, tmp_path):
    """The panel under ``coverage run`` (C tracer, and sys.monitoring on 3.12+)."""
    if core == "sysmon" and sys.version_info < (3, 12):
        pytest.skip("coverage's sysmon core needs Python 3.12+")
    try:
        import coverage  # noqa: F401
    except ImportError:
        if os.environ.get("PERF_REQUIRE_SERVICES") == "1":
            pytest.fail("coverage is not installed (pip install -e '.[test]')")
        pytest.skip("coverage is not installed (pip install -e '.[test]')")
    root = Path(__file__).parents[2]
    env = {
        **os.environ,
        "COVERAGE_CORE": core,
        "TOX_PARALLEL_ENV": f"cov{core}{os.getpid()}",
        "PYTHONPATH": str(root),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "coverage",
            "run",
            f"--data-file={tmp_path / '.coverage'}",
            "--source=debug_toolbar_perf",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{__file__}::test_known_split_is_measured",
            f"{__file__}::test_next_to_the_toolbars_profiling_panel",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "2 passed" in proc.stdout, proc.stdout[-2000:]
    assert (tmp_path / ".coverage").exists()  # coverage really measured


# --- a real threaded server ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_get_separate_profiles(live_server, sampling_site):
    created: list[DebugToolbar] = []
    DebugToolbar._created.connect(
        lambda sender, toolbar, **kw: created.append(toolbar), weak=False, dispatch_uid="t-conc"
    )
    results: dict[str, int] = {}

    def fetch(name: str) -> None:
        with urllib.request.urlopen(f"{live_server.url}/{name}/?s=0.4", timeout=30) as resp:
            results[name] = resp.status

    try:
        with override_settings(DEBUG_TOOLBAR_PERF=perf()):
            threads = [threading.Thread(target=fetch, args=(n,)) for n in ("a", "b")]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
    finally:
        DebugToolbar._created.disconnect(dispatch_uid="t-conc")
    assert results == {"a": 200, "b": 200}
    by_path = {tb.request.path: tb for tb in created}
    for own, foreign in (("a", "b"), ("b", "a")):
        record = stored_stats(by_path[f"/{own}/"].request_id, PANEL)["record"]
        names = {f[0] for f in record["functions"]}
        assert f"thread_{own}_marker" in names
        assert f"thread_{foreign}_marker" not in names
        assert f"only_{foreign}" not in names
        assert record["samples"] > 5  # a real profile, even on a loaded 2-core machine


# --- crash regression ----------------------------------------------------------------------

CRASH_SCRIPT = Path(__file__).with_name("crash_probe.py")


ROOT = Path(__file__).parents[2]
PROBE_PACKAGES = ["django", "django-debug-toolbar", "vmprof", "djangorestframework"]
SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]


def _find_interpreter(version: str) -> str | None:
    """python3.X on PATH or under pyenv, if it really is that version."""
    import glob
    import shutil

    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(f"/root/.pyenv/versions/{version}*/bin/python{version}"))
    for exe in filter(None, candidates):
        try:
            out = subprocess.run(
                [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return exe
    return None


def _probe_python(version: str) -> str:
    """A cached venv (``.venv-probe-3.X``) with Django, DDT, vmprof and this repo installed.

    Skips when the interpreter or the packages are missing, unless
    PERF_REQUIRE_SERVICES=1, in which case that is a failure.
    """
    require = os.environ.get("PERF_REQUIRE_SERVICES") == "1"
    missing = pytest.fail if require else pytest.skip
    venv = ROOT / f".venv-probe-{version}"
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    if ready.exists() and python.exists():
        return str(python)
    base = _find_interpreter(version)
    if base is None:
        missing(f"Python {version} not found on PATH or under /root/.pyenv/versions")
    steps = [
        [base, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", *PROBE_PACKAGES],
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)],
    ]
    for step in steps:
        proc = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            missing(
                f"could not build the probe venv for Python {version} ({' '.join(step[1:4])}): "
                f"{(proc.stderr or proc.stdout)[-500:]}"
            )
    ready.write_text("\n".join(PROBE_PACKAGES))
    return str(python)


@pytest.mark.slow
@pytest.mark.parametrize("version", SUPPORTED)
def test_panel_never_kills_the_process(version):
    """Runs the panel repeatedly on an object- and template-heavy view in a subprocess, on
    every supported interpreter (engine 'auto': vmprof where safe, else the thread sampler)."""
    python = _probe_python(version)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PERF_PG_PORT": "1",  # SQLite only: the probe venv has no database drivers
        "PERF_MARIADB_PORT": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(
        [python, str(CRASH_SCRIPT), "25"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "profiles: 25" in proc.stdout, proc.stdout
    assert f"python: {version}." in proc.stdout, proc.stdout
