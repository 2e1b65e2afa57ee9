"""Wagtail's page explorer, 300 pages, every panel: runs ``wagtail_site/wagtail_checks.py``
in a pytest process of its own with Wagtail's apps installed (see its settings)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wagtail_explorer_panels() -> None:
    pytest.importorskip("wagtail")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.real_apps.wagtail_site.settings"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/real_apps/wagtail_site/wagtail_checks.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert re.search(r"^3 passed", proc.stdout, re.M), proc.stdout[-2000:]
