#!/usr/bin/env bash
# Real backing services on loopback, for the test suite and for developers who want a
# local cluster stack. Source it and call the functions, or run it:
#
#   deploy/local/services.sh up      # start everything, print the environment to use
#   deploy/local/services.sh down    # stop what `up` started
#
# State lives in $SC_STACK_DIR (default /tmp/secureconnect-stack). Variables are SC_*, not
# SECURECONNECT_*: the server reads every SECURECONNECT_* variable as configuration.
# Services are installed from Debian packages when missing (needs root, as in CI).
set -euo pipefail

STACK_DIR="${SC_STACK_DIR:-/tmp/secureconnect-stack}"
PG_PORT="${SC_PG_PORT:-55432}"
PG_PASSWORD="secureconnect-test"

apt_updated=""
apt_install() { # packages…
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# PostgreSQL: a private cluster (initdb as the postgres user; apt does not start one here),
# password authentication on 127.0.0.1:$PG_PORT.
postgres_up() {
  apt_install postgresql
  local bin data="$STACK_DIR/postgres"
  bin="$(pg_bin)"
  mkdir -p "$STACK_DIR" && chmod 755 "$STACK_DIR"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data" && install -d -o postgres -g postgres -m 700 "$data"
    printf '%s\n' "$PG_PASSWORD" > "$STACK_DIR/pg-password" && chown postgres "$STACK_DIR/pg-password"
    runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres -A scram-sha-256 \
      --pwfile="$STACK_DIR/pg-password" >/dev/null
  fi
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $data -c max_connections=300 -c fsync=off" >/dev/null
  export SC_TEST_POSTGRES_URL="postgres://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
}

postgres_down() {
  local bin data="$STACK_DIR/postgres"
  bin="$(pg_bin)"
  [ -n "$bin" ] && [ -f "$data/postmaster.pid" ] &&
    runuser -u postgres -- "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
}

# Redis: no persistence, loopback only. (The cluster tests also start private Redis
# servers of their own, which they stop and restart to test outages.)
REDIS_PORT="${SC_REDIS_PORT:-56379}"
redis_up() {
  apt_install redis-server
  mkdir -p "$STACK_DIR/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --dir "$STACK_DIR/redis" --pidfile "$STACK_DIR/redis/redis.pid" --logfile "$STACK_DIR/redis/redis.log"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  export SC_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
}

redis_down() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

services_up() {
  postgres_up
  redis_up
  echo "export SC_TEST_POSTGRES_URL=$SC_TEST_POSTGRES_URL"
  echo "export SC_TEST_REDIS_URL=$SC_TEST_REDIS_URL"
}

services_down() {
  redis_down
  postgres_down
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    up) services_up ;;
    down) services_down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
  esac
fi
