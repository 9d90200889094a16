#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1 for the test suite.
# Starts them when installed but stopped; installs the Debian packages when run as root and
# they are missing; otherwise says exactly what to do. Idempotent.
set -euo pipefail

PGHOST=127.0.0.1
PGPORT=${TICKML_TEST_PG_PORT:-5432}
REDIS_PORT=${TICKML_TEST_REDIS_PORT:-6379}

say() { printf '[services] %s\n' "$*" >&2; }
is_root() { [ "$(id -u)" -eq 0 ]; }

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }
redis_up() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
  else
    (exec 3<>/dev/tcp/127.0.0.1/"$REDIS_PORT") 2>/dev/null
  fi
}

apt_install() {
  if ! is_root; then
    say "missing: $*. Install them (sudo apt-get install -y $*) or run 'make test' as root."
    exit 1
  fi
  say "installing $* from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if pg_up; then return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql postgresql-client
  fi
  local ver
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  # tests connect over TCP as 'postgres' without a password: trust loopback for this dev cluster
  local hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if is_root && [ -w "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    say "allowing password-less loopback connections in $hba (development cluster)"
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
  say "starting PostgreSQL $ver"
  if is_root; then
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  else
    pg_ctlcluster "$ver" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && return; sleep 1; done
  say "PostgreSQL is not answering on $PGHOST:$PGPORT. Start it, or point TICKML_TEST_PG_URL at a server."
  exit 1
}

ensure_redis() {
  if redis_up; then return; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server
  fi
  say "starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    >/dev/null
  for _ in $(seq 1 30); do redis_up && return; sleep 1; done
  say "Redis is not answering on 127.0.0.1:$REDIS_PORT. Start it, or set TICKML_TEST_REDIS_URL."
  exit 1
}

ensure_chromium() {
  # the UI test drives Debian's headless Chromium against `dagster dev`
  if command -v chromium >/dev/null 2>&1; then return; fi
  if is_root; then
    apt_install chromium
  else
    say "chromium missing: the UI browser test will be skipped (sudo apt-get install -y chromium)"
  fi
}

ensure_prometheus() {
  # the rule tests run Debian's promtool; the live e2e test starts a real Prometheus server
  if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then return; fi
  if is_root; then
    apt_install prometheus
  else
    say "prometheus missing: the rule and Prometheus tests will be skipped (sudo apt-get install -y prometheus)"
  fi
}

ensure_compiler() {
  # the registry compiles champion models to C (tl2cgen) with gcc; without it the scorer falls
  # back to LightGBM (exact, slower) and the runtime tests fail
  if command -v "${CC:-gcc}" >/dev/null 2>&1; then return; fi
  if is_root; then
    apt_install gcc libc6-dev
  else
    say "gcc missing: compiled inference falls back to LightGBM (sudo apt-get install -y gcc)"
  fi
}

ensure_compiler
if [ -n "${TICKML_TEST_PG_URL:-}" ]; then say "using TICKML_TEST_PG_URL"; else ensure_postgres; fi
if [ -n "${TICKML_TEST_REDIS_URL:-}" ]; then say "using TICKML_TEST_REDIS_URL"; else ensure_redis; fi
if [ "${1:-}" != "--no-browser" ]; then ensure_chromium; ensure_prometheus; fi
say "PostgreSQL and Redis are up"
