"""Benchmark settings: the demo site on a throw-away SQLite file (and PostgreSQL and MariaDB
when reachable)."""

import os
import sys
import tempfile
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
if str(DEMO_DIR) not in sys.path:
    sys.path.insert(0, str(DEMO_DIR))

from demo_site import databases  # noqa: E402
from demo_site.settings import *  # noqa: E402,F403

BENCH_DIR = Path(os.environ.get("PERF_BENCH_DIR") or tempfile.gettempdir()) / "perf-bench"
BENCH_DIR.mkdir(parents=True, exist_ok=True)

DATABASES = {"default": databases.sqlite(BENCH_DIR / "bench.sqlite3")}
if os.environ.get("PERF_BENCH_PG", "1") == "1":
    DATABASES["postgres"] = databases.postgres("perf_bench")
    DATABASES["postgres"]["TEST"] = {"NAME": "perf_bench"}
if os.environ.get("PERF_BENCH_MARIADB", "1") == "1":  # the explain suite's third engine
    DATABASES["mariadb"] = databases.mariadb("perf_bench")
    DATABASES["mariadb"]["TEST"] = {"NAME": "perf_bench"}

DEBUG = True
LOGGING = {"version": 1, "disable_existing_loggers": False}
INSTALLED_APPS = [*INSTALLED_APPS]  # noqa: F405
DEBUG_TOOLBAR_CONFIG = {"RENDER_PANELS": False, "RESULTS_CACHE_SIZE": 25}
PYINSTRUMENT_PROFILE_DIR = str(BENCH_DIR / "pyinstrument")
