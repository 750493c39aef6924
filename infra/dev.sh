#!/usr/bin/env bash
# Local real infrastructure for development and tests: Apache Kafka (KRaft, single node) and a
# project-local PostgreSQL cluster, both on 127.0.0.1, all state under .local/ (git-ignored).
# PostgreSQL authenticates with scram-sha-256 and a generated password kept in .local/pg/password
# and the libpq passfile .local/pg/pgpass (both mode 0600, never printed), which every local
# client reads (common/db/session.py). A cluster made with the old `trust` auth is converted.
# The cluster preloads TimescaleDB 2.23.1, built once from ../shared/vendor by infra/timescale.sh
# (cached under ~/.cache/btcmeta). BTCMETA_TIMESCALE=off starts plain PostgreSQL instead.
# TimescaleDB's job scheduler is off here unless BTCMETA_TIMESCALE_JOBS=on: the local databases hold
# the bundled history (2018-2022), which a retention policy would delete on its first run; tests run
# the policy jobs explicitly (CALL run_job). Both settings take effect when the server starts.
# (With the scheduler on, TimescaleDB 2.23.1 on Debian's PostgreSQL 15.20 commits each job's work
# but then fails the run with 'cannot drop portal "" while it is being set up'; CALL run_job is fine.)
#
#   infra/dev.sh deps     install/resolve what is missing (Postgres via apt, Kafka jars via Maven)
#   infra/dev.sh start    start Kafka and Postgres (idempotent), create the database
#   infra/dev.sh stop     stop both (idempotent)
#   infra/dev.sh status   say what runs where
#   infra/dev.sh reset    stop and delete all local state
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${BTCMETA_STATE_DIR:-$REPO/.local}"
KAFKA_DIR="$STATE/kafka"
PG_DIR="$STATE/pg"
KAFKA_PORT="${BTCMETA_KAFKA_PORT:-39092}"
KAFKA_CONTROLLER_PORT="${BTCMETA_KAFKA_CONTROLLER_PORT:-39093}"
PG_PORT="${BTCMETA_PG_PORT:-55432}"
PG_USER="btcmeta"
PG_DB="btcmeta"
PG_OS_USER="${BTCMETA_PG_OS_USER:-postgres}"
PG_PASSWORD_FILE="$PG_DIR/password"
PG_PASSFILE="$PG_DIR/pgpass"
TIMESCALE="${BTCMETA_TIMESCALE:-on}"
TIMESCALE_JOBS="${BTCMETA_TIMESCALE_JOBS:-off}"

say() { printf '[infra] %s\n' "$*"; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
  # Installs Debian packages when we are root on a Debian-like machine; otherwise says what to do.
  if is_root && command -v apt-get >/dev/null 2>&1; then
    say "installing $* with apt-get"
    if [ ! -f "$STATE/.apt-updated" ]; then
      apt-get update -qq >/dev/null
      mkdir -p "$STATE" && touch "$STATE/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    die "missing: $*. Install it (Debian/Ubuntu: sudo apt-get install $*) and run again."
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# PostgreSQL
pg_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  return 1
}

pg_as_owner() {
  # The server refuses to run as root: run it as an ordinary system user when we are root.
  if is_root; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

pg_deps() {
  pg_bindir >/dev/null || apt_install postgresql
  pg_bindir >/dev/null || die "PostgreSQL server binaries (initdb, pg_ctl) not found after install"
  if is_root && ! id "$PG_OS_USER" >/dev/null 2>&1; then
    say "creating system user $PG_OS_USER to own the local cluster"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
  fi
}

pg_secret() {
  # The role's password: generated once (40 random alphanumerics), mode 0600, never printed; and
  # the libpq passfile (host:port:db:user:password) that clients and psql read it from.
  mkdir -p "$PG_DIR"
  if [ ! -s "$PG_PASSWORD_FILE" ]; then
    (umask 077; head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | head -c 40 >"$PG_PASSWORD_FILE.tmp")
    mv "$PG_PASSWORD_FILE.tmp" "$PG_PASSWORD_FILE"
    say "generated the password of PostgreSQL role $PG_USER into $PG_PASSWORD_FILE (mode 0600)"
  fi
  chmod 600 "$PG_PASSWORD_FILE"
  local pw; pw="$(cat "$PG_PASSWORD_FILE")"
  (umask 077; printf '127.0.0.1:%s:*:%s:%s\nlocalhost:%s:*:%s:%s\n' \
    "$PG_PORT" "$PG_USER" "$pw" "$PG_PORT" "$PG_USER" "$pw" >"$PG_PASSFILE.tmp")
  mv "$PG_PASSFILE.tmp" "$PG_PASSFILE"
  chmod 600 "$PG_PASSFILE"
}

pg_secure() {
  # Idempotent: a cluster still on `trust` gets the role's password (set while trust lets us in,
  # sent on stdin, output discarded: an error would echo the statement) and scram-sha-256 in
  # pg_hba.conf; then a login with the passfile must work, or we stop and say why.
  local bin="$1" hba="$PG_DIR/data/pg_hba.conf"
  if pg_as_owner grep -Eq '^[[:space:]]*[^#[:space:]].*[[:space:]]trust[[:space:]]*$' "$hba"; then
    say "switching PostgreSQL auth from trust to scram-sha-256 (password in $PG_PASSWORD_FILE)"
    { printf "SET password_encryption = 'scram-sha-256';\n"
      printf "ALTER ROLE %s PASSWORD '%s';\n" "$PG_USER" "$(cat "$PG_PASSWORD_FILE")"
    } | psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -f - >/dev/null 2>&1 \
      || die "could not set the password of role $PG_USER (psql output withheld: it would show it)"
    pg_as_owner sed -i -E '/^[[:space:]]*#/! s/[[:space:]]trust[[:space:]]*$/ scram-sha-256/' "$hba"
    pg_as_owner "$bin/pg_ctl" -D "$PG_DIR/data" reload >/dev/null
  fi
  if ! PGCONNECT_TIMEOUT=10 psql_admin -tAc 'SELECT 1' >/dev/null 2>&1; then
    die "cannot log in to PostgreSQL as $PG_USER with $PG_PASSFILE (password changed or lost? 'infra/dev.sh reset' starts over)"
  fi
}

on_off() {
  # Normalises an on/off setting, or stops with its name: a typo must not pick a mode silently.
  case "$2" in
    on|1|true|yes) echo on ;;
    off|0|false|no) echo off ;;
    *) die "$1 must be on or off (got '$2')" ;;
  esac
}
TIMESCALE="$(on_off BTCMETA_TIMESCALE "$TIMESCALE")"
TIMESCALE_JOBS="$(on_off BTCMETA_TIMESCALE_JOBS "$TIMESCALE_JOBS")"
timescale_on() { [ "$TIMESCALE" = on ]; }

pg_server_options() {
  # Server settings on the command line rather than in postgresql.conf: they apply to new and
  # existing clusters alike, and ALTER SYSTEM cannot silently override them.
  local opts="-p $PG_PORT -k $PG_DIR/run -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on"
  if timescale_on; then
    opts+=" -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off"
    if [ "$TIMESCALE_JOBS" = on ]; then opts+=" -c timescaledb.max_background_workers=8 -c max_worker_processes=16"
    else opts+=" -c timescaledb.max_background_workers=0"; fi
  fi
  echo "$opts"
}

pg_start_bindir() {
  # The binaries the server starts from: the system's, or a private copy with TimescaleDB
  # (infra/timescale.sh decides; it builds and installs TimescaleDB first when needed).
  if timescale_on; then
    "$REPO/infra/timescale.sh" ensure >&2 || die "TimescaleDB could not be built or installed (BTCMETA_TIMESCALE=off starts plain PostgreSQL)"
    "$REPO/infra/timescale.sh" bindir
  else
    pg_bindir
  fi
}

pg_check_preload() {
  # A server started before TimescaleDB was set up (or with BTCMETA_TIMESCALE=off) keeps running
  # without it: say how to restart it rather than restart it under clients' feet.
  timescale_on || return 0
  local loaded
  loaded="$(psql_admin -tAc 'SHOW shared_preload_libraries' 2>/dev/null || true)"
  if [[ "$loaded" != *timescaledb* ]]; then
    say "WARNING: PostgreSQL on 127.0.0.1:$PG_PORT runs without TimescaleDB preloaded; restart it to load it: infra/dev.sh stop && infra/dev.sh start"
  fi
}

pg_running() { [ -f "$PG_DIR/data/postmaster.pid" ] && pg_as_owner "$(pg_bindir)/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; }

pg_start() {
  pg_deps
  local bin; bin="$(pg_start_bindir)"
  mkdir -p "$PG_DIR/run"
  pg_secret
  if is_root; then chown -R "$PG_OS_USER" "$PG_DIR"; fi
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    say "initialising PostgreSQL cluster in $PG_DIR/data"
    if is_root && ! pg_as_owner test -x "$PG_DIR"; then
      # A checkout under a private folder (e.g. /root/...) is not traversable by the postgres user:
      # grant search (x) permission only, on each parent that lacks it, and say so.
      local d="$PG_DIR"
      while [ "$d" != "/" ]; do
        d="$(dirname "$d")"
        if ! runuser -u "$PG_OS_USER" -- test -x "$d"; then say "granting traverse permission on $d to others"; chmod o+x "$d"; fi
      done
    fi
    pg_as_owner test -x "$PG_DIR" || die "user $PG_OS_USER cannot reach $PG_DIR (a parent folder is not traversable)"
    pg_as_owner "$bin/initdb" -D "$PG_DIR/data" -U "$PG_USER" --auth-local=scram-sha-256 --auth-host=scram-sha-256 \
      --pwfile="$PG_PASSWORD_FILE" -E UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1 \
      || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
  fi
  if pg_running; then
    say "PostgreSQL already running on 127.0.0.1:$PG_PORT"
  else
    if port_open "$PG_PORT"; then die "port $PG_PORT is taken by another program (set BTCMETA_PG_PORT)"; fi
    if timescale_on; then say "starting PostgreSQL on 127.0.0.1:$PG_PORT (TimescaleDB preloaded, job scheduler $TIMESCALE_JOBS)"
    else say "starting PostgreSQL on 127.0.0.1:$PG_PORT (without TimescaleDB: BTCMETA_TIMESCALE=off)"; fi
    pg_as_owner "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
      -o "$(pg_server_options)" start >/dev/null \
      || { tail -n 30 "$PG_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
  fi
  pg_secure "$bin"
  pg_check_preload
  if ! psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    say "creating database $PG_DB"
    psql_admin -qc "CREATE DATABASE $PG_DB"
  fi
}

psql_admin() { PGPASSFILE="$PG_PASSFILE" psql -X -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres "$@"; }

pg_stop() {
  if pg_bindir >/dev/null && pg_running; then
    say "stopping PostgreSQL"
    pg_as_owner "$(pg_bindir)/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null
  else
    say "PostgreSQL not running"
  fi
}

# ---------------------------------------------------------------------------------------------
# Kafka
kafka_deps() {
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null 2>&1 || apt_install maven
  local major
  major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  [ -n "$major" ] && [ "$major" -ge 17 ] || die "Java 17 or newer is required for Kafka 3.9 (found: ${major:-none})"
  if [ ! -f "$KAFKA_DIR/libs/.complete" ] || [ "$REPO/infra/kafka/pom.xml" -nt "$KAFKA_DIR/libs/.complete" ]; then
    say "resolving Apache Kafka jars from Maven Central (infra/kafka/pom.xml)"
    rm -rf "$KAFKA_DIR/libs"; mkdir -p "$KAFKA_DIR/libs"
    mvn -q -B -Dstyle.color=never -f "$REPO/infra/kafka/pom.xml" dependency:copy-dependencies -Dkafka.libs.dir="$KAFKA_DIR/libs" \
      || die "Maven could not resolve the Kafka jars"
    touch "$KAFKA_DIR/libs/.complete"
  fi
}

kafka_pid() { [ -f "$KAFKA_DIR/kafka.pid" ] && cat "$KAFKA_DIR/kafka.pid"; }
kafka_running() { local p; p="$(kafka_pid)" && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

KAFKA_HEAP="${BTCMETA_KAFKA_HEAP:--Xms256m -Xmx768m}"
kafka_java_cmd() {
  # shellcheck disable=SC2206
  JAVA_CMD=(java $KAFKA_HEAP -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$KAFKA_DIR/log4j.properties" "-Dkafka.logs.dir=$KAFKA_DIR/logs"
    -cp "$KAFKA_DIR/libs/*" "$@")
}
kafka_java() { kafka_java_cmd "$@"; "${JAVA_CMD[@]}"; }

kafka_config() {
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  sed -e "s#@DATA@#$KAFKA_DIR/data#" -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CPORT@#$KAFKA_CONTROLLER_PORT#g" \
    "$REPO/infra/kafka/server.properties.in" >"$KAFKA_DIR/server.properties"
  sed -e "s#@LOGS@#$KAFKA_DIR/logs#" "$REPO/infra/kafka/log4j.properties.in" >"$KAFKA_DIR/log4j.properties"
}

kafka_start() {
  kafka_deps
  if kafka_running; then say "Kafka already running on 127.0.0.1:$KAFKA_PORT (pid $(kafka_pid))"; return; fi
  if port_open "$KAFKA_PORT"; then die "port $KAFKA_PORT is taken by another program (set BTCMETA_KAFKA_PORT)"; fi
  kafka_config
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cid; cid="$(kafka_java kafka.tools.StorageTool random-uuid | tail -n1)"
    say "formatting KRaft storage (cluster $cid)"
    kafka_java kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/format.log" 2>&1 \
      || { cat "$KAFKA_DIR/logs/format.log" >&2; die "Kafka storage format failed"; }
  fi
  say "starting Kafka 3.9 (KRaft) on 127.0.0.1:$KAFKA_PORT"
  kafka_java_cmd kafka.Kafka "$KAFKA_DIR/server.properties"
  # setsid: the broker outlives the shell (and the test run) that started it.
  setsid nohup "${JAVA_CMD[@]}" >"$KAFKA_DIR/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$KAFKA_DIR/kafka.pid"
  local i
  for i in $(seq 1 120); do
    if port_open "$KAFKA_PORT"; then say "Kafka is up"; return; fi
    kafka_running || { tail -n 40 "$KAFKA_DIR/logs/stdout.log" "$KAFKA_DIR/logs/server.log" >&2 2>/dev/null; die "Kafka exited during start"; }
    sleep 0.5
  done
  die "Kafka did not open port $KAFKA_PORT within 60 s (see $KAFKA_DIR/logs)"
}

kafka_stop() {
  if kafka_running; then
    local p; p="$(kafka_pid)"
    say "stopping Kafka (pid $p)"
    kill "$p"
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$p" 2>/dev/null && { say "Kafka did not stop in 30 s; killing"; kill -9 "$p"; }
    rm -f "$KAFKA_DIR/kafka.pid"
  else
    say "Kafka not running"
  fi
}

status() {
  if kafka_running; then say "Kafka      running  127.0.0.1:$KAFKA_PORT (pid $(kafka_pid))"; else say "Kafka      stopped"; fi
  if pg_bindir >/dev/null && pg_running; then
    say "PostgreSQL running  127.0.0.1:$PG_PORT (db $PG_DB, user $PG_USER, password in $PG_PASSFILE)"
    local preload; preload="$(psql_admin -tAc 'SHOW shared_preload_libraries' 2>/dev/null || true)"
    if [[ "$preload" == *timescaledb* ]]; then say "TimescaleDB preloaded"; else say "TimescaleDB not preloaded"; fi
  else say "PostgreSQL stopped"; fi
}

case "${1:-}" in
  deps) pg_deps; if timescale_on; then "$REPO/infra/timescale.sh" ensure; fi; kafka_deps; say "dependencies present" ;;
  start) pg_start; kafka_start; status ;;
  stop) kafka_stop; pg_stop ;;
  status) status ;;
  reset) kafka_stop; pg_stop; say "deleting $STATE/kafka/data and $STATE/pg/data"; rm -rf "$KAFKA_DIR/data" "$PG_DIR/data" ;;
  *) echo "usage: infra/dev.sh deps|start|stop|status|reset" >&2; exit 2 ;;
esac
