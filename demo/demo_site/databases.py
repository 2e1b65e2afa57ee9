"""Database settings chosen by one environment variable, DEMO_DB (sqlite, postgres, mariadb).

Shared by the demo and the test suite so both talk to the same servers the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PG_HOST = os.environ.get("PERF_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("PERF_PG_PORT", "5432")
MARIADB_HOST = os.environ.get("PERF_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = os.environ.get("PERF_MARIADB_PORT", "3306")


def sqlite(path: Path | str) -> dict[str, Any]:
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}


def postgres(name: str = "perf_demo") -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": os.environ.get("PERF_PG_USER", "postgres"),
        "PASSWORD": os.environ.get("PERF_PG_PASSWORD", ""),
        "HOST": PG_HOST,
        "PORT": PG_PORT,
        "TEST": {"NAME": f"test_{name}"},
    }


def mariadb(name: str = "perf_demo") -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.mysql",
        "NAME": name,
        "USER": os.environ.get("PERF_MARIADB_USER", "root"),
        "PASSWORD": os.environ.get("PERF_MARIADB_PASSWORD", ""),
        "HOST": MARIADB_HOST,
        "PORT": MARIADB_PORT,
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"NAME": f"test_{name}", "CHARSET": "utf8mb4"},
    }


def from_env(sqlite_path: Path | str, name: str = "perf_demo") -> dict[str, Any]:
    choice = os.environ.get("DEMO_DB", "sqlite").lower()
    if choice in ("postgres", "postgresql", "pg"):
        return postgres(name)
    if choice in ("mariadb", "mysql"):
        return mariadb(name)
    if choice != "sqlite":
        raise ValueError(f"DEMO_DB must be sqlite, postgres or mariadb, not {choice!r}")
    return sqlite(sqlite_path)
