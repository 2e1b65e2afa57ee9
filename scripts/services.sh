#!/usr/bin/env bash
# PostgreSQL and MariaDB on 127.0.0.1 for the test suite, on a fresh Debian machine too.
#
# For each server, in order: already listening on its port (PERF_PG_PORT, 5432;
# PERF_MARIADB_PORT, 3306): used as it is. Else a server the machine has (PostgreSQL's
# clusters, the mariadb binary) is started. Else, as root with apt-get, the Debian packages are
# installed (postgresql with HypoPG, mariadb-server) and a throwaway server is started on
# loopback with a data folder of its own (PERF_SERVICES_DIR, default /tmp/perf-services):
# trust auth for `postgres`, `root` without a password, as the tests expect.
# Prints one line per server saying which of these happened; never fails the caller
# (a missing server is a skip, or a failure under PERF_REQUIRE_SERVICES=1, in the tests).
set -uo pipefail

PG_PORT=${PERF_PG_PORT:-5432}
MARIADB_PORT=${PERF_MARIADB_PORT:-3306}
DIR=${PERF_SERVICES_DIR:-/tmp/perf-services}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { for _ in $(seq 1 "${2:-30}"); do listening "$1" && return 0; sleep 1; done; return 1; }
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=0
apt_install() {
  can_apt || return 1
  if [ $apt_updated = 0 ]; then apt-get update -qq >/dev/null && apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

say_started() {  # NAME PORT DATA: whether the throwaway server came up
  if wait_for "$2"; then
    echo "$1: started a throwaway server on 127.0.0.1:$2 (data $3)"
  else
    echo "$1: could not start a server (log: $3/server.log): its tests are skipped"
  fi
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

pg_throwaway() {  # start (creating it first if needed) the throwaway cluster
  local bin data="$DIR/postgres-$PG_PORT"
  bin=$(pg_bin)
  mkdir -p "$DIR" && chmod 755 "$DIR"
  if ! runuser -u postgres -- test -x "$DIR"; then
    echo "PostgreSQL: user postgres cannot reach $DIR (set PERF_SERVICES_DIR): its tests are skipped"
    return
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    mkdir -p "$data" && chown postgres: "$data"
    runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
  fi
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/server.log" \
    -o "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1" start >/dev/null
  say_started PostgreSQL "$PG_PORT" "$data"
}

postgres() {
  if listening "$PG_PORT"; then echo "PostgreSQL: listening on 127.0.0.1:$PG_PORT"; return; fi
  if [ -s "$DIR/postgres-$PG_PORT/PG_VERSION" ] && [ -n "$(pg_bin)" ]; then pg_throwaway; return; fi
  if [ "$PG_PORT" = 5432 ] && command -v pg_lsclusters >/dev/null && [ -n "$(pg_lsclusters -h 2>/dev/null)" ]; then
    pg_lsclusters -h | while read -r version name _; do
      pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start >/dev/null 2>&1
    done
    if wait_for "$PG_PORT" 15; then echo "PostgreSQL: started the machine's cluster on 127.0.0.1:$PG_PORT"; return; fi
  fi
  if [ -z "$(pg_bin)" ]; then
    apt_install postgresql || { echo "PostgreSQL: not installed and cannot install (needs root and apt-get): its tests are skipped"; return; }
    # The package's own cluster asks for a password over TCP: stop it, use a throwaway one.
    pg_lsclusters -h 2>/dev/null | while read -r version name _; do
      pg_ctlcluster --skip-systemctl-redirect "$version" "$name" stop >/dev/null 2>&1
    done
  fi
  pg_throwaway
}

hypopg() {  # the extension for the server's version, whichever way it runs
  local bin version
  bin=$(pg_bin)
  [ -n "$bin" ] || return 0
  version=$(basename "$(dirname "$bin")")
  dpkg -s "postgresql-$version-hypopg" >/dev/null 2>&1 && return 0
  apt_install "postgresql-$version-hypopg" && echo "PostgreSQL: installed HypoPG" \
    || echo "PostgreSQL: HypoPG not installed (hypothetical-index checks are skipped)"
}

mariadb_throwaway() {
  local data="$DIR/mariadb-$MARIADB_PORT"
  mkdir -p "$data"
  if [ ! -d "$data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$data" --user="$(id -un)" \
      --auth-root-authentication-method=normal >"$data/install.log" 2>&1
  fi
  setsid /usr/sbin/mariadbd --no-defaults --datadir="$data" --port="$MARIADB_PORT" \
    --bind-address=127.0.0.1 --socket="$data/mysqld.sock" --pid-file="$data/mysqld.pid" \
    --user="$(id -un)" --log-error="$data/server.log" </dev/null >/dev/null 2>&1 &
  say_started MariaDB "$MARIADB_PORT" "$data"
}

mariadb() {
  if listening "$MARIADB_PORT"; then echo "MariaDB: listening on 127.0.0.1:$MARIADB_PORT"; return; fi
  if [ -d "$DIR/mariadb-$MARIADB_PORT/mysql" ] && [ -x /usr/sbin/mariadbd ]; then mariadb_throwaway; return; fi
  if [ "$MARIADB_PORT" = 3306 ] && [ -x /usr/sbin/mariadbd ] && [ -d /var/lib/mysql/mysql ]; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1
    if wait_for "$MARIADB_PORT" 15; then echo "MariaDB: started the machine's server on 127.0.0.1:$MARIADB_PORT"; return; fi
  fi
  if [ ! -x /usr/sbin/mariadbd ]; then
    apt_install mariadb-server || { echo "MariaDB: not installed and cannot install (needs root and apt-get): its tests are skipped"; return; }
    # The package's own server lets root in by unix socket only: stop it, use a throwaway one.
    mariadb-admin --protocol=socket shutdown >/dev/null 2>&1
  fi
  mariadb_throwaway
}

postgres
hypopg
mariadb
exit 0
