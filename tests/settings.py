"""Test settings: the demo site plus the database servers that are reachable.

PostgreSQL and MariaDB are added as the aliases "postgres" and "mariadb" when a
server answers on 127.0.0.1; tests that need them are skipped otherwise, or
fail when PERF_REQUIRE_SERVICES=1 (set by .ci/run).
"""

import os
import socket
import sys
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
if str(DEMO_DIR) not in sys.path:
    sys.path.insert(0, str(DEMO_DIR))

from demo_site import databases  # noqa: E402
from demo_site.settings import *  # noqa: E402,F403
from demo_site.settings import BASE_DIR  # noqa: E402,F401


def _reachable(host: str, port: str) -> bool:
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


PG_AVAILABLE = _reachable(databases.PG_HOST, databases.PG_PORT)
MARIADB_AVAILABLE = _reachable(databases.MARIADB_HOST, databases.MARIADB_PORT)

DATABASES = {"default": databases.sqlite(":memory:")}
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("PERF_SQLITE_TEST_NAME") or None}
if PG_AVAILABLE:
    DATABASES["postgres"] = databases.postgres(os.environ.get("PERF_TEST_DB", "perf_tests"))
if MARIADB_AVAILABLE:
    DATABASES["mariadb"] = databases.mariadb(os.environ.get("PERF_TEST_DB", "perf_tests"))

ROOT_URLCONF = "tests.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework", "tests.testapp"]  # noqa: F405

INSTALLED_APPS = [*INSTALLED_APPS, "tests.instances_app"]  # instances panel test models
INSTALLED_APPS = [*INSTALLED_APPS, "tests.real_apps.library"]  # the admin and generic views

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG_TOOLBAR_CONFIG = {
    **DEBUG_TOOLBAR_CONFIG,  # noqa: F405
    "RENDER_PANELS": False,
    "SHOW_TOOLBAR_CALLBACK": "debug_toolbar.middleware.show_toolbar",
}
