"""The README documents every setting with its real default, and every command in README.md
and docs/*.md works verbatim on the demo.

``documented_commands()`` extracts them: each line of a ``sh``/``bash`` block and each inline
code span that starts like a command. ``CHECKS`` says how each one is checked; a command added
to the docs without an entry there fails ``test_every_documented_command_has_a_check``.
Run commands go through ``bash -c`` exactly as written, in a copy of the demo with a seeded
SQLite database, with this interpreter's ``bin`` first on PATH (``python`` is the test venv's,
as after ``./scripts/test`` or with the venv activated).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from debug_toolbar_perf.conf import SCHEMA

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_settings_block() -> str:
    match = re.search(r"```python\nDEBUG_TOOLBAR_PERF = \{\n(.*?)\n\}\n```", README, re.S)
    assert match, "the README has no DEBUG_TOOLBAR_PERF block"
    return match.group(1)


def test_every_file_the_docs_name_exists() -> None:
    """Paths of tests and modules named in README.md and docs/ (they went stale once, after
    the layout moved tests/panels/* to one folder per panel)."""
    texts = {p.name: p.read_text() for p in [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md"))]}
    named = {
        (name, path)
        for name, text in texts.items()
        for path in re.findall(r"\b((?:tests|debug_toolbar_perf|benchmarks)/[\w/]+\.py)\b", text)
    }
    assert named, "no path found: the pattern is wrong"
    assert sorted(f"{name}: {path}" for name, path in named if not (ROOT / path).exists()) == []


def test_every_setting_is_documented_with_its_default() -> None:
    block = readme_settings_block()
    for section, options in SCHEMA.items():
        for key, option in options.items():
            line = re.search(rf'"{key}": ([^#\n]*?),?\s*(#|$)', block, re.M)
            assert line, f"{section}.{key} is not in the README"
            documented = eval(line.group(1).rstrip(","))  # literals only
            assert documented == option.default, f"{section}.{key}: README {documented!r}"


DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: How an inline code span that is a command starts (a setting like `ENGINE="auto"` is not,
#: `VAR=value command` is; a span with `...` is a placeholder, not a command).
INLINE_COMMAND = re.compile(r"(\./scripts/|python |\.venv/bin/|cd |pip |nox |[A-Z_]+=\S+ \S)")


def documented_commands() -> dict[str, str]:
    """command -> the first file that documents it."""
    found: dict[str, str] = {}
    for path in DOC_FILES:
        text = path.read_text()
        for block in re.findall(r"```(?:sh|bash|console|shell)\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                command = " ".join(re.sub(r"\s#\s.*$", "", line).split())
                if command:
                    found.setdefault(command, path.name)
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        for span in re.findall(r"`([^`\n]+)`", prose):
            if INLINE_COMMAND.match(span) and "..." not in span:
                found.setdefault(" ".join(span.split()), path.name)
    return found


@dataclass(frozen=True)
class Run:
    """Run verbatim in the demo copy (``cwd``: "demo", or "." for the folder that holds it, or
    "repo" for the repository itself: commands that write nothing); it must exit 0 and print
    ``expect``."""

    expect: str
    cwd: str = "demo"
    files: tuple[str, ...] = ()  # files the command must have written, relative to cwd


@dataclass(frozen=True)
class Serve:
    """Run verbatim from the repository root: the demo must serve its home page with the
    toolbar (``database``: the server it needs)."""

    database: str = "sqlite"


@dataclass(frozen=True)
class Parsed:
    """Too long for the suite (the full benchmarks, about 10 minutes): its arguments must be
    accepted by the program, which names every suite they select."""


@dataclass(frozen=True)
class ByCI:
    """Run verbatim by ``.ci/run`` on every submission (it is the CI itself, or part of it)."""


@dataclass(frozen=True)
class ByTest:
    """Run by the named test, which needs what the suite cannot give every test (a build)."""

    test: str


Check = Run | Serve | Parsed | ByCI | ByTest

REVIEW_RUN = "GET /reviews/summary/ -> 200"
CHECKS: dict[str, Check] = {
    "./scripts/demo": Serve(),
    "./scripts/test": ByCI(),
    "DEMO_DB=postgres ./scripts/demo": Serve("postgres"),
    "PORT=8765 ./scripts/demo": Serve(),
    "DEMO_DB=mariadb ./scripts/demo": Serve("mariadb"),
    'pip install "django-debug-toolbar-perf[all]"': ByTest("tests/test_packaging.py"),
    "pip install build": Run("build", cwd="."),
    "python -m build": ByTest("tests/test_packaging.py"),
    'pip install "django-debug-toolbar-perf[all]" --find-links dist': ByTest(
        "tests/test_packaging.py"
    ),
    "python manage.py check": Run("System check identified no issues"),
    "python manage.py profile_request /reviews/summary/": Run(REVIEW_RUN),
    "cd demo && python manage.py profile_request /reviews/summary/": Run(REVIEW_RUN, cwd="."),
    "python manage.py profile_request /api/orders/ --user alice --method POST "
    '-H "Accept: application/json" --data-file order.json --content-type application/json': Run(
        "POST /api/orders/ -> 201"
    ),
    "python manage.py profile_request /products/ --panels sampling,explain --repeat 20 "
    "--output prof/": Run(
        "GET /products/ -> 200 · 20 runs",
        files=("prof/report.html", "prof/GET.products.speedscope.json"),
    ),
    "python manage.py profile_request /products/n-plus-one/ --panels instances,explain "
    "--save before.json && python manage.py profile_request /products/fixed/ --panels "
    "instances,explain --compare before.json": Run(
        "N+1 on shop.Category fixed: \u221250 queries", files=("before.json",)
    ),
    'python manage.py profile_request "/cpu/?n=1000" --panels sampling --repeat 10 --compare': Run(
        "Sampling: the 10 runs merged into one profile"
    ),
    "python benchmarks/sampling_bias.py": Run("switch interval 5 ms (default): true", cwd="repo"),
    ".venv/bin/python -m benchmarks": Parsed(),
    ".venv/bin/python -m benchmarks --quick": ByCI(),
    ".venv/bin/python -m benchmarks --only explain instances": Parsed(),
    "python -m benchmarks --only explain": Parsed(),
    "python -m benchmarks --only instances": Parsed(),
    "python -m benchmarks --only line_memory": Parsed(),
    "python -m benchmarks --only sampling": Parsed(),
    "python -m benchmarks": Parsed(),
    "nox -s matrix": Parsed(),
    "nox -s oldest newest": ByCI(),
}


def checks_of(kind: type) -> list[str]:
    return [command for command, check in CHECKS.items() if isinstance(check, kind)]


def test_every_documented_command_has_a_check() -> None:
    documented = documented_commands()
    unchecked = {c: f for c, f in documented.items() if c not in CHECKS}
    assert not unchecked, f"documented commands without a check in CHECKS: {unchecked}"
    stale = sorted(set(CHECKS) - set(documented))
    assert not stale, f"CHECKS lists commands the docs no longer have: {stale}"


# --- Run: on a copy of the demo with a seeded SQLite database ------------------------------


def command_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the demo's manage.py picks its own
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def seeded_demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's database as ``./scripts/demo`` leaves it (migrated, seeded, user alice)."""
    db = tmp_path_factory.mktemp("demo-db") / "demo.sqlite3"
    env = command_env(DEMO_SQLITE_PATH=str(db), DEMO_DB="sqlite")
    for args in (["migrate", "-v0"], ["seed_demo"]):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT / "demo", env=env, check=True)
    return db


def run_verbatim(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", checks_of(Run))
def test_command_runs_verbatim_on_the_demo(
    command: str, seeded_demo_db: Path, tmp_path: Path
) -> None:
    check = CHECKS[command]
    assert isinstance(check, Run)
    shutil.copytree(ROOT / "demo", tmp_path / "demo", ignore=shutil.ignore_patterns("*.sqlite3*"))
    cwd = ROOT if check.cwd == "repo" else tmp_path / check.cwd
    env = command_env(DEMO_SQLITE_PATH=str(seeded_demo_db), DEMO_DB="sqlite")
    result = run_verbatim(command, cwd, env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command!r} exited {result.returncode}:\n{output[-3000:]}"
    assert check.expect in output, output[-3000:]
    for name in check.files:
        assert (cwd / name).stat().st_size > 0, f"{command!r} did not write {name}"


# --- Serve: ./scripts/demo from the repository root -----------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_server_database(database: str) -> None:
    """The README: the demo runs on the local server's database ``perf_demo``, which must exist.
    Create it as a user would, once."""
    from django.conf import settings
    from django.db import connections

    connection = connections[database]
    name = "perf_demo"
    with connection._nodb_cursor() as cursor:
        if database == "postgres":
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {name}")
        else:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4")
    assert settings.DATABASES[database]["HOST"] == "127.0.0.1"


def serve_params() -> list[object]:
    """The ./scripts/demo commands, each marked with the database server it needs."""
    params = []
    for command in checks_of(Serve):
        database = getattr(CHECKS[command], "database", "sqlite")
        marks = [] if database == "sqlite" else [getattr(pytest.mark, database)]
        params.append(pytest.param(command, marks=marks))
    return params


@pytest.mark.slow
@pytest.mark.parametrize("command", serve_params())
def test_demo_script_serves(command: str, seeded_demo_db: Path, django_db_blocker: Any) -> None:
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("./scripts/demo installs into .venv; this suite runs from another venv")
    check = CHECKS[command]
    assert isinstance(check, Serve)
    if check.database != "sqlite":
        with django_db_blocker.unblock():
            ensure_server_database(check.database)
    named = re.search(r"\bPORT=(\d+)", command)  # the command's own port, else a free one
    port = int(named.group(1)) if named else free_port()
    env = command_env(PORT=str(port), DEMO_SQLITE_PATH=str(seeded_demo_db))
    env.pop("DEMO_DB", None)  # as a newcomer's shell: only what the command sets
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # runserver's reloader: stop the whole group
    )
    body = ""
    try:
        deadline = time.monotonic() + 300  # a server database is seeded on the first start
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
                    body = r.read().decode()
                break
            except OSError:
                time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert "django-debug-toolbar-perf demo" in body, output[-3000:]
    assert 'id="djDebug' in body, "the toolbar is not on the demo's home page"
    assert f"open http://127.0.0.1:{port}/" in output  # PORT is honoured and said
    # What it installed is recorded, so the next start skips pip (see scripts/demo).
    stamp = ROOT / ".venv" / f".demo-installed-{check.database}"
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "debug_toolbar_perf").rglob("*.c"))
    assert "debug_toolbar_perf/_stacks.c" in sources  # every extension's source counts
    installed = ["pyproject.toml", "setup.py", *sources]
    digest = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in installed)).hexdigest()
    assert stamp.read_text().strip() == digest


# --- Parsed, ByCI, ByTest -----------------------------------------------------------------


@pytest.mark.parametrize("command", checks_of(Parsed))
def test_long_command_is_accepted(command: str) -> None:
    words = shlex.split(command)
    if words[0] == "nox":
        nox = shutil.which("nox", path=str(Path(sys.executable).parent))
        if nox is None:  # the matrix's own sessions run the suite without nox
            pytest.skip("nox is not installed in this environment (pip install -e '.[test]')")
        listed = subprocess.run(
            [nox, "--list", "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        sessions = {s["name"] for s in json.loads(listed.stdout)}
        wanted = words[words.index("-s") + 1 :]
        assert set(wanted) <= sessions, f"nox has no session {set(wanted) - sessions}"
        return
    from benchmarks.run import check_only, make_parser

    assert words[words.index("-m") + 1] == "benchmarks"
    parser = make_parser()
    args = parser.parse_args(words[words.index("-m") + 2 :])
    check_only(args.only, parser)  # exits 2 on an unknown suite


@pytest.mark.parametrize("command", checks_of(ByCI))
def test_ci_runs_the_command(command: str) -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^[^#\n]*(?<![\w/-])(\.venv/bin/)?{re.escape(command)}", ci, re.M), (
        f".ci/run does not run {command!r}"
    )


@pytest.mark.parametrize("command", checks_of(ByTest))
def test_named_test_runs_the_command(command: str) -> None:
    check = CHECKS[command]
    assert isinstance(check, ByTest)
    assert command in (ROOT / check.test).read_text(), f"{check.test} does not run {command!r}"
