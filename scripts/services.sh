#!/usr/bin/env bash
# Local PostgreSQL and Redis for the integration tests and the demo (loopback only).
#
#   scripts/services.sh start|stop|status|env
#
# start   starts what is not already answering, waits until both answer, creates the databases
#         and prints the env lines (stdout; progress goes to stderr):
#           OTELPERF_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5433/otelperf_test
#           OTELPERF_TEST_REDIS_URL=redis://127.0.0.1:6380/0
# stop    stops only what this script started (a server it did not start is left alone)
# status  says what answers on each port and who started it
# env     prints the env lines only
#
# A port that already answers counts as running, whoever started it. Env: OTELPERF_PG_PORT (5433),
# OTELPERF_REDIS_PORT (6380), OTELPERF_SERVICES_DIR (state: data dirs, logs, pid files; default
# .otelperf/services in the checkout). Use: env $(scripts/services.sh env) pytest
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_PORT="${OTELPERF_PG_PORT:-5433}"
REDIS_PORT="${OTELPERF_REDIS_PORT:-6380}"
STATE="${OTELPERF_SERVICES_DIR:-$ROOT/.otelperf/services}"
PG_DIR="$STATE/pg-$PG_PORT"
# Moved to the postgres user's home when the checkout is not readable by it (see start_pg).
[ -f "$STATE/pg-$PG_PORT.location" ] && PG_DIR="$(cat "$STATE/pg-$PG_PORT.location")"
REDIS_DIR="$STATE/redis-$REDIS_PORT"
HOST=127.0.0.1
DATABASES=(otelperf_test shop)

say() { printf '[services] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

pg_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/postgres" ] && { echo "$d"; return 0; }
    done
    command -v pg_ctl >/dev/null && { dirname "$(readlink -f "$(command -v pg_ctl)")"; return 0; }
    return 1
}

# initdb and postgres refuse to run as root: run them as the 'postgres' system user then.
as_pg_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' system user (apt-get install postgresql creates it)"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_answers() { "$PGBIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }
redis_answers() { [ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
pg_ours() { [ -f "$PG_DIR/data/postmaster.pid" ] && as_pg_owner "$PGBIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; }
redis_pid() {
    local pid
    pid="$(cat "$REDIS_DIR/redis.pid" 2>/dev/null)" || return 1
    # Only a live redis-server counts: a stale pid file may name an unrelated process by now.
    [ -n "$pid" ] && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

wait_for() {  # wait_for WHAT CHECK_FN SECONDS
    local what="$1" check="$2" deadline=$((SECONDS + $3))
    until "$check"; do
        [ $SECONDS -lt $deadline ] || die "$what did not answer within $3 s (logs in $STATE)"
        sleep 0.2
    done
}

start_pg() {
    if pg_answers; then
        if pg_ours; then say "PostgreSQL on $HOST:$PG_PORT: already running (started by this script)"
        else say "PostgreSQL on $HOST:$PG_PORT: already answering (not started by this script; left as is)"; fi
    else
        mkdir -p "$PG_DIR"
        if [ "$(id -u)" -eq 0 ]; then
            chown postgres: "$PG_DIR"
            # A checkout under /root is out of the postgres user's reach: keep the cluster in its home.
            if ! runuser -u postgres -- test -w "$PG_DIR"; then
                rmdir "$PG_DIR" 2>/dev/null || true
                PG_DIR="$(getent passwd postgres | cut -d: -f6)/otelperf/pg-$PG_PORT"
                mkdir -p "$PG_DIR" && chown -R postgres: "$(dirname "$PG_DIR")"
                echo "$PG_DIR" >"$STATE/pg-$PG_PORT.location"
            fi
        fi
        if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
            say "PostgreSQL: initdb in $PG_DIR/data"
            as_pg_owner "$PGBIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --no-sync \
                >"$PG_DIR/initdb.log" 2>&1 || die "initdb failed, see $PG_DIR/initdb.log"
        fi
        say "PostgreSQL: starting on $HOST:$PG_PORT"
        # Test database: durability off (fsync/synchronous_commit) for speed; socket in the state dir.
        as_pg_owner "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
            -o "-p $PG_PORT -c listen_addresses=$HOST -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null || die "PostgreSQL did not start, see $PG_DIR/postgres.log"
    fi
    wait_for PostgreSQL pg_answers 60
    local db
    for db in "${DATABASES[@]}"; do
        if [ -z "$("$PGBIN/psql" -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
            "$PGBIN/psql" -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE $db" >/dev/null ||
                die "could not create database $db"
            say "PostgreSQL: created database $db"
        fi
    done
}

start_redis() {
    if redis_answers; then
        if redis_pid >/dev/null; then say "Redis on $HOST:$REDIS_PORT: already running (started by this script)"
        else say "Redis on $HOST:$REDIS_PORT: already answering (not started by this script; left as is)"; fi
        return
    fi
    command -v redis-server >/dev/null || die "redis-server not found: run scripts/install.sh"
    mkdir -p "$REDIS_DIR"
    say "Redis: starting on $HOST:$REDIS_PORT (no persistence)"
    redis-server --bind "$HOST" --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
        --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" >/dev/null ||
        die "Redis did not start, see $REDIS_DIR/redis.log"
    wait_for Redis redis_answers 30
}

stop_pg() {
    if pg_ours; then
        as_pg_owner "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null && say "PostgreSQL on $PG_PORT: stopped"
    elif pg_answers; then say "PostgreSQL on $PG_PORT: not started by this script, left running"
    else say "PostgreSQL on $PG_PORT: not running"; fi
}

stop_redis() {
    local pid
    if pid="$(redis_pid)"; then
        kill "$pid"
        local deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        rm -f "$REDIS_DIR/redis.pid"
        say "Redis on $REDIS_PORT: stopped"
    elif redis_answers; then say "Redis on $REDIS_PORT: not started by this script, left running"
    else say "Redis on $REDIS_PORT: not running"; fi
}

status() {
    local who
    if pg_answers; then who=foreign; pg_ours && who="started by this script, data $PG_DIR/data"
        echo "postgresql $HOST:$PG_PORT: running ($who)"
    else echo "postgresql $HOST:$PG_PORT: stopped"; fi
    if redis_answers; then who=foreign; redis_pid >/dev/null && who="started by this script, pid $(redis_pid)"
        echo "redis      $HOST:$REDIS_PORT: running ($who)"
    else echo "redis      $HOST:$REDIS_PORT: stopped"; fi
}

print_env() {
    echo "OTELPERF_TEST_POSTGRES_URL=postgresql://postgres@$HOST:$PG_PORT/otelperf_test"
    echo "OTELPERF_TEST_REDIS_URL=redis://$HOST:$REDIS_PORT/0"
}

cmd="${1:-}"
case "$cmd" in
    start|stop|status) PGBIN="$(pg_bindir)" || die "PostgreSQL binaries not found: run scripts/install.sh" ;;
    env) ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
case "$cmd" in
    start) mkdir -p "$STATE"; start_pg; start_redis; print_env ;;
    stop) stop_pg; stop_redis ;;
    status) status ;;
    env) print_env ;;
esac
