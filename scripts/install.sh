#!/usr/bin/env bash
# One install script for contributors, `make setup`, `make demo` and CI (Debian 12, root or sudo).
#
#   scripts/install.sh           system packages (PostgreSQL, Redis) + .venv + .venv-oldest
#
# .venv has the newest releases; .venv-oldest the oldest ones otelperf supports (see OLDEST_PINS).
#
# Idempotent: each step is skipped when already done (binaries present; venv installed from the
# same pyproject.toml, recorded as a hash inside the venv). Progress lines start with "[install]";
# on failure the failing step and its log file are named. Env: PYTHON (interpreter for the venvs),
# OTELPERF_SKIP_SYSTEM=1 (do not touch apt).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/otelperf"
LOGS="$ROOT/.otelperf/logs"
mkdir -p "$CACHE/pip" "$LOGS"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$CACHE/pip}" PIP_DISABLE_PIP_VERSION_CHECK=1
# Pinned so that the plain-OpenTelemetry comparison arms are reproducible.
OTEL_INSTRUMENTATION_PIN="opentelemetry-instrumentation==0.66b2"
# The low ends of the ranges pyproject.toml declares, for `make test`'s oldest-versions leg:
# OpenTelemetry SDK/API/exporters 1.30 with the contrib 0.51b0 releases made for them (and the
# wrapt 1.x they bring), SQLAlchemy 2.0 (also the contrib SQLAlchemy instrumentor's newest, for the
# comparison), FastAPI 0.100 (the first on pydantic 2) with the Starlette it pins, 0.27.
# Starlette 0.27's TestClient needs httpx < 0.28.
OTEL_OLDEST=1.30.0
OTEL_CONTRIB_OLDEST=0.51b0
OLDEST_PINS=(
    "opentelemetry-api==$OTEL_OLDEST" "opentelemetry-sdk==$OTEL_OLDEST" "opentelemetry-proto==$OTEL_OLDEST"
    "opentelemetry-exporter-otlp-proto-common==$OTEL_OLDEST" "opentelemetry-exporter-otlp-proto-http==$OTEL_OLDEST"
    "opentelemetry-exporter-otlp-proto-grpc==$OTEL_OLDEST"
    "opentelemetry-instrumentation==$OTEL_CONTRIB_OLDEST" "opentelemetry-semantic-conventions==$OTEL_CONTRIB_OLDEST"
    "opentelemetry-util-http==$OTEL_CONTRIB_OLDEST"
    "opentelemetry-instrumentation-fastapi==$OTEL_CONTRIB_OLDEST" "opentelemetry-instrumentation-asgi==$OTEL_CONTRIB_OLDEST"
    "opentelemetry-instrumentation-sqlalchemy==$OTEL_CONTRIB_OLDEST" "opentelemetry-instrumentation-httpx==$OTEL_CONTRIB_OLDEST"
    "opentelemetry-instrumentation-requests==$OTEL_CONTRIB_OLDEST" "opentelemetry-instrumentation-redis==$OTEL_CONTRIB_OLDEST"
    'sqlalchemy>=2.0,<2.1' 'fastapi==0.100.0' 'starlette==0.27.0' 'httpx>=0.24,<0.28'
)

say() { printf '[install] %s\n' "$*"; }
VERSIONS='import sqlalchemy, fastapi, starlette, wrapt, opentelemetry.sdk.version as v; print("SQLAlchemy", sqlalchemy.__version__, "/ FastAPI", fastapi.__version__, "/ Starlette", starlette.__version__, "/ opentelemetry-sdk", v.__version__, "/ wrapt", wrapt.__version__)'

# run_step NAME CMD...: run CMD with output to a log; on failure name the step and show the tail.
run_step() {
    local name="$1"; shift
    local log="$LOGS/install-$name.log"
    local status=0
    "$@" >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        say "FAILED at step '$name' (exit status $status); full log: $log"
        tail -n 25 "$log" | sed 's/^/[install]   | /'
        exit 1
    fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root (or sudo) for: $*"; return 1; fi
}

pg_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    return 1
}

system_packages() {
    if [ "${OTELPERF_SKIP_SYSTEM:-0}" = 1 ]; then say "system packages: skipped (OTELPERF_SKIP_SYSTEM=1)"; return; fi
    local missing=()
    pg_bindir >/dev/null || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    if [ ${#missing[@]} -eq 0 ]; then
        say "system packages: PostgreSQL ($(pg_bindir)) and Redis ($(command -v redis-server)) present, skipped"
        return
    fi
    say "system packages: installing ${missing[*]}"
    # Only refresh the package lists when apt cannot see the packages (fresh image, emptied lists).
    if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
        say "apt-get update"
        run_step apt-update as_root apt-get update
    fi
    run_step apt-install as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
    pg_bindir >/dev/null || { say "PostgreSQL installed but no /usr/lib/postgresql/*/bin/postgres found"; exit 1; }
}

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11 python3.10; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            command -v "$candidate"; return 0
        fi
    done
    return 1
}

# make_venv DIR EXTRA_REQUIREMENT...: create/refresh a venv with the package installed editable.
make_venv() {
    local dir="$1"; shift
    local name; name="$(basename "$dir")"
    local want; want="$( { cat pyproject.toml; echo "$*"; "$PY" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
    local stamp="$dir/.otelperf-install-hash"
    if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
        "$dir/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("otelperf") is None)' 2>/dev/null; then
        say "$name: up to date, skipped"
        return
    fi
    if [ ! -x "$dir/bin/python" ]; then
        say "$name: creating with $PY"
        run_step "venv-$name" "$PY" -m venv "$dir"
    fi
    say "$name: pip install -e '.[dev]' $*"
    run_step "pip-$name" "$dir/bin/python" -m pip install -e '.[dev]' "$@"
    echo "$want" >"$stamp"
    say "$name: $("$dir/bin/python" -c "$VERSIONS")"
}

start=$(date +%s)
say "repo $ROOT, cache $CACHE, logs $LOGS"
system_packages
if ! PY="$(find_python)"; then
    say "no Python >= 3.10 with venv/ensurepip found; installing python3-venv"
    run_step apt-python as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv
    PY="$(find_python)" || { say "FAILED at step 'python': still no usable Python >= 3.10"; exit 1; }
fi
make_venv "$ROOT/.venv" "$OTEL_INSTRUMENTATION_PIN"
# Oldest-versions leg. New pins change the hash, so the next install installs them into it.
make_venv "$ROOT/.venv-oldest" "${OLDEST_PINS[@]}"
# The backend (collector, Jaeger, Prometheus): cached Go builds, seconds when already built; a cold
# build takes about half an hour on 2 cores. OTELPERF_SKIP_STACK=1 leaves it out.
if [ "${OTELPERF_SKIP_STACK:-0}" = 1 ]; then
    say "backend: skipped (OTELPERF_SKIP_STACK=1)"
else
    say "backend: scripts/install_stack.sh"
    "$ROOT/scripts/install_stack.sh" || { say "FAILED at step 'backend' (see the [install-stack] lines above)"; exit 1; }
fi
say "done in $(( $(date +%s) - start )) s"
