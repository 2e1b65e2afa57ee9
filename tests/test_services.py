"""scripts/services.sh starts throwaway PostgreSQL and MariaDB servers on loopback that the
suite can use as it uses the machine's (trust auth for postgres, root without a password)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="starts servers as their own users (root only)")
@pytest.mark.skipif(
    not Path("/usr/sbin/mariadbd").exists() or not list(Path("/usr/lib/postgresql").glob("*/bin")),
    reason="PostgreSQL and MariaDB are not installed (scripts/services.sh installs them)",
)
def test_throwaway_servers_on_free_ports() -> None:
    import MySQLdb
    import psycopg

    pg_port, my_port = free_port(), free_port()
    # Not pytest's tmp_path: the postgres user must be able to reach the data folder.
    data = Path(tempfile.mkdtemp(prefix="perf-services-test-", dir="/tmp"))
    env = {
        **os.environ,
        "PERF_PG_PORT": str(pg_port),
        "PERF_MARIADB_PORT": str(my_port),
        "PERF_SERVICES_DIR": str(data),
    }
    run = subprocess.run(
        [str(ROOT / "scripts" / "services.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        assert f"PostgreSQL: started a throwaway server on 127.0.0.1:{pg_port}" in run.stdout
        assert f"MariaDB: started a throwaway server on 127.0.0.1:{my_port}" in run.stdout
        with psycopg.connect(
            host="127.0.0.1", port=pg_port, user="postgres", dbname="postgres"
        ) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
        conn = MySQLdb.connect(host="127.0.0.1", port=my_port, user="root", passwd="")
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
        conn.close()
        again = subprocess.run(
            [str(ROOT / "scripts" / "services.sh")], env=env, capture_output=True, text=True
        )
        assert f"PostgreSQL: listening on 127.0.0.1:{pg_port}" in again.stdout
    finally:
        pg_bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(pg_bin / "pg_ctl"),
                "-D",
                str(data / f"postgres-{pg_port}"),
                "stop",
                "-m",
                "fast",
            ],
            capture_output=True,
        )
        pid_file = data / f"mariadb-{my_port}" / "mysqld.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 15)
        shutil.rmtree(data, ignore_errors=True)
