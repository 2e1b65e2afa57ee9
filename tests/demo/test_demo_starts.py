"""The demo starts with one command: runserver migrates and seeds a fresh database itself."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "demo"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_runserver_migrates_seeds_and_serves(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DEMO_SQLITE_PATH": str(tmp_path / "demo.sqlite3"), "DEMO_DB": "sqlite"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=DEMO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/products/published/") as r:
                    body = r.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.5)
        assert "Product 50<" in body  # seeded: every 50th product is published
        assert 'id="djDebugRoot"' in body or 'id="djDebug"' in body  # the toolbar is shown
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert "Demo data ready." in output
