"""The ``together`` benchmark suite runs end to end and reports its three goals.

CI runs every suite in quick mode; this runs ``together`` alone on a fresh SQLite file, in a
process of its own (the benchmarks have their own Django settings), and reads its table.
Speed is never asserted here: the figures go to docs/benchmarks/together.md.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.slow
def test_together_suite_runs_and_marks_its_goals(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PERF_BENCH_DIR": str(tmp_path),
        "PERF_BENCH_PG": "0",
        "PERF_BENCH_MARIADB": "0",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "-m", "benchmarks", "--quick", "--only", "together"]
    done = subprocess.run(
        [*command, "--output", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    table = (tmp_path / "out" / "results-quick.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "ms" not in line[:4]]
    workloads = {row.split(" | ")[0][2:] for row in rows}
    assert {"trivial page (/)", "categories (a few ms)"} <= workloads
    defaults = [row for row in rows if "all four, this interpreter's defaults" in row]
    assert len(defaults) == 2
    # The trivial page is judged by the milliseconds added, the others by the ratio.
    assert re.search(r"\| <= 1 ms added \| (yes|no) \|$", defaults[0]), defaults[0]
    assert re.search(r"\| <= x1\.(25|3) \| (yes|no) \|$", defaults[1]), defaults[1]
    # Line memory is measured ticked on where it is off by default.
    assert any("line memory ticked on" in row for row in rows) == (sys.version_info < (3, 12))
    shares = re.findall(
        r"categories \(a few ms\): the package's own hooks are \d+\.\d% of \d+ samples over 2 "
        r"requests with (all four, .+?) \((?:none|debug-toolbar-perf|[A-Z])",
        table,
    )
    expected = [defaults[1].split(" | ")[1]]
    if sys.version_info < (3, 12):
        expected.append("all four, line memory ticked on")
    assert shares == expected, table
    assert re.search(r"trivial page \(/\), all four, [^:]+: [+-]\d+\.\d\d ms per request", table)
