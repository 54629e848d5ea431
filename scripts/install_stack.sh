#!/usr/bin/env bash
# Installs the otelperf backend without Docker: the OpenTelemetry Collector (built with the
# Collector Builder from collector-config/builder-config.yaml), Jaeger v2 (built from its Go
# module), and Prometheus + Alertmanager (Debian packages; their service units are not used,
# `otelperf stack` runs the binaries itself).
#
# Idempotent and cached: Go builds land in $OTELPERF_CACHE/bin (default ~/.cache/otelperf/bin)
# under names keyed by version (+ sha256 of the builder manifest for the collector); a second run
# only checks them and takes seconds. Go's module/build caches live under $OTELPERF_CACHE/go so
# they survive too. Every step prints "[install-stack] ..."; a failure names the step and its log
# (under $OTELPERF_CACHE/logs) and exits non-zero.
#
# Env: OTELPERF_CACHE (cache root), OTELPERF_BUILD_JOBS (go build -p, default: nproc),
#      OTELPERF_SKIP_APT=1 (do not install Prometheus/Alertmanager), OTELPERF_FORCE_REBUILD=1.
# Results: $OTELPERF_CACHE/bin/{otelcol-otelperf,jaeger,ocb} symlinks; /usr/bin/prometheus,
#          /usr/bin/prometheus-alertmanager.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${OTELPERF_CACHE:-$HOME/.cache/otelperf}"
BIN="$CACHE/bin"
LOGS="$CACHE/logs"
BUILD="$CACHE/build"
MANIFEST="$ROOT/collector-config/builder-config.yaml"

# Pins. The collector release is read from the manifest (one source of truth).
JAEGER_MODULE="github.com/jaegertracing/jaeger"
JAEGER_MODULE_VERSION="v1.76.0" # Go module tag; the same commit is Jaeger release v2.13.0
JAEGER_RELEASE="v2.13.0"

export GOPATH="$CACHE/go"
export GOMODCACHE="$CACHE/go/pkg/mod"
export GOCACHE="$CACHE/go/cache"
export GOFLAGS="-buildvcs=false -p=${OTELPERF_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

STEP="start"
LOG=""

say() { printf '[install-stack] %s\n' "$*"; }

on_error() {
    local rc=$?
    say "FAILED at step: $STEP (exit $rc)"
    if [[ -n "$LOG" && -f "$LOG" ]]; then
        say "log: $LOG (last lines below)"
        tail -n 25 "$LOG" | sed 's/^/    /'
    fi
    exit "$rc"
}
trap on_error ERR

step() {
    STEP="$1"
    LOG="$LOGS/$2.log"
    say "step: $STEP"
}

# Runs "$@" with output to $LOG; prints a heartbeat every 30s (elapsed, packages compiled so far,
# from `go build -v` output) so a long cold build visibly makes progress.
run_logged() {
    local start=$SECONDS
    : >"$LOG"
    "$@" >>"$LOG" 2>&1 9>&- &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        for _ in $(seq 1 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "  ... still running ($((SECONDS - start))s, $(grep -cE '^[A-Za-z0-9._~/-]+$' "$LOG" || true) packages compiled; log: $LOG)"
        fi
    done
    local rc=0
    wait "$pid" || rc=$?
    if [[ $rc -ne 0 ]]; then
        return "$rc"
    fi
    say "  done in $((SECONDS - start))s"
}

sudo_cmd() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root for: $* (no sudo found)"
        return 1
    fi
}

mkdir -p "$BIN" "$LOGS" "$BUILD"

# One install at a time (a concurrent second run waits instead of racing the same outputs).
exec 9>"$CACHE/.install.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi

# ---------------------------------------------------------------------------------------------
step "check toolchain" toolchain
if ! command -v go >/dev/null 2>&1; then
    LOG=""
    say "Go is not installed (need >= 1.25 for the pinned collector and Jaeger): install it, e.g. apt-get install golang-1.25 or https://go.dev/dl/"
    false
fi
say "  $(go version)"
[[ -f "$MANIFEST" ]] || {
    say "missing $MANIFEST"
    false
}
COLLECTOR_VERSION="$(sed -n 's#^ *- gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v\([0-9.]*\).*#\1#p' "$MANIFEST")"
[[ -n "$COLLECTOR_VERSION" ]] || {
    say "cannot read the collector version from $MANIFEST (otlpreceiver line)"
    false
}
# Keyed by what the build reads: comments and blank lines do not force a half-hour rebuild.
MANIFEST_HASH="$(sed -e 's/[[:space:]]#.*$//' -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' "$MANIFEST" | sha256sum | cut -c1-12)"
say "  collector $COLLECTOR_VERSION (manifest sha256 $MANIFEST_HASH), jaeger $JAEGER_RELEASE ($JAEGER_MODULE@$JAEGER_MODULE_VERSION)"

# ---------------------------------------------------------------------------------------------
step "prometheus + alertmanager (apt)" apt
if [[ "${OTELPERF_SKIP_APT:-0}" == 1 ]]; then
    say "  skipped (OTELPERF_SKIP_APT=1)"
elif command -v prometheus >/dev/null 2>&1 && command -v prometheus-alertmanager >/dev/null 2>&1; then
    say "  cached: $(prometheus --version 2>&1 | head -n1)"
else
    command -v apt-get >/dev/null 2>&1 || {
        say "apt-get not found: install Prometheus >= 2.42 and Alertmanager yourself (binaries 'prometheus', 'prometheus-alertmanager' on PATH)"
        false
    }
    export DEBIAN_FRONTEND=noninteractive
    # apt-get update only when the package index does not know the packages yet.
    if ! apt-cache show prometheus prometheus-alertmanager >/dev/null 2>&1; then
        say "  apt-get update"
        run_logged sudo_cmd apt-get update
    fi
    say "  apt-get install prometheus prometheus-alertmanager"
    # Install without starting anything: we run the binaries ourselves on loopback.
    if ! run_logged sudo_cmd apt-get install -y --no-install-recommends prometheus prometheus-alertmanager; then
        say "  install failed; retrying after apt-get update"
        run_logged sudo_cmd apt-get update
        run_logged sudo_cmd apt-get install -y --no-install-recommends prometheus prometheus-alertmanager
    fi
    say "  installed: $(prometheus --version 2>&1 | head -n1)"
fi

# ---------------------------------------------------------------------------------------------
step "collector builder (ocb) v$COLLECTOR_VERSION" ocb
OCB="$BIN/ocb-v$COLLECTOR_VERSION"
if [[ -x "$OCB" && "${OTELPERF_FORCE_REBUILD:-0}" != 1 ]]; then
    say "  cached: $OCB"
else
    rm -rf "$BUILD/ocb-gobin"
    GOBIN="$BUILD/ocb-gobin" run_logged go install -v "go.opentelemetry.io/collector/cmd/builder@v$COLLECTOR_VERSION"
    mv -f "$BUILD/ocb-gobin/builder" "$OCB"
fi
ln -sfn "$(basename "$OCB")" "$BIN/ocb"

# ---------------------------------------------------------------------------------------------
step "collector otelcol-otelperf $COLLECTOR_VERSION" otelcol-build
COLLECTOR="$BIN/otelcol-otelperf-$COLLECTOR_VERSION-$MANIFEST_HASH"
if [[ -x "$COLLECTOR" && "${OTELPERF_FORCE_REBUILD:-0}" != 1 ]] && "$COLLECTOR" --version >/dev/null 2>&1; then
    say "  cached: $COLLECTOR"
else
    out="$BUILD/otelcol-$COLLECTOR_VERSION-$MANIFEST_HASH"
    rm -rf "$out"
    mkdir -p "$out"
    # Same manifest, only the output path changed (the hash above is of the repo file).
    sed "s#^\( *output_path:\).*#\1 $out#" "$MANIFEST" >"$out/builder-config.yaml"
    say "  building (cold: ~5 min on 2 cores; with a warm Go cache under $GOCACHE: seconds)"
    # -v: go build lists each package it compiles (the heartbeat counts them).
    GOFLAGS="$GOFLAGS -v" run_logged "$OCB" --config "$out/builder-config.yaml" --verbose
    cp "$out/otelcol-otelperf" "$COLLECTOR.tmp"
    mv -f "$COLLECTOR.tmp" "$COLLECTOR"
    say "  built: $COLLECTOR ($(du -h "$COLLECTOR" | cut -f1))"
fi
ln -sfn "$(basename "$COLLECTOR")" "$BIN/otelcol-otelperf"

# ---------------------------------------------------------------------------------------------
step "jaeger $JAEGER_RELEASE" jaeger-build
JAEGER="$BIN/jaeger-$JAEGER_RELEASE"
if [[ -x "$JAEGER" && "${OTELPERF_FORCE_REBUILD:-0}" != 1 ]] && "$JAEGER" version >/dev/null 2>&1; then
    say "  cached: $JAEGER"
else
    # Not `go install module/cmd/jaeger@version`: Jaeger's go.mod has a replace directive, which
    # `go install pkg@version` refuses. Build inside a copy of the module source instead.
    LOG="$LOGS/jaeger-download.log"
    say "  go mod download $JAEGER_MODULE@$JAEGER_MODULE_VERSION"
    run_logged go mod download -json "$JAEGER_MODULE@$JAEGER_MODULE_VERSION"
    src_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p' "$LOG" | head -n1)"
    [[ -d "$src_dir" ]] || {
        say "module source dir not found in $LOG"
        false
    }
    src="$BUILD/jaeger-src-$JAEGER_MODULE_VERSION"
    rm -rf "$src"
    cp -r "$src_dir" "$src"
    chmod -R u+w "$src"
    LOG="$LOGS/jaeger-build.log"
    say "  building (cold: ~10-20 min on 2 cores; with a warm Go cache: seconds)"
    ldflags="-s -w -X $JAEGER_MODULE/internal/version.latestVersion=$JAEGER_RELEASE"
    ldflags+=" -X $JAEGER_MODULE/internal/version.commitSHA=$JAEGER_MODULE_VERSION"
    pushd "$src" >/dev/null
    run_logged go build -v -trimpath -ldflags="$ldflags" -o "$JAEGER.tmp" ./cmd/jaeger
    popd >/dev/null
    mv -f "$JAEGER.tmp" "$JAEGER"
    say "  built: $JAEGER ($(du -h "$JAEGER" | cut -f1))"
fi
ln -sfn "$(basename "$JAEGER")" "$BIN/jaeger"

# ---------------------------------------------------------------------------------------------
step "validate configs" validate
: >"$LOG"
"$BIN/otelcol-otelperf" validate --config "$ROOT/collector-config/otelcol.yaml" >>"$LOG" 2>&1
say "  collector-config/otelcol.yaml: ok"
for cfg in "$ROOT"/jaeger/config*.yaml; do
    "$BIN/jaeger" validate --config "$cfg" >>"$LOG" 2>&1
    say "  jaeger/$(basename "$cfg"): ok"
done
if command -v promtool >/dev/null 2>&1; then
    promtool check config "$ROOT/prometheus/prometheus.yml" >>"$LOG" 2>&1
    say "  prometheus/prometheus.yml: ok"
fi

STEP="done"
say "done:"
say "  $BIN/otelcol-otelperf -> $(readlink "$BIN/otelcol-otelperf")"
say "  $BIN/jaeger -> $(readlink "$BIN/jaeger")"
say "  $(command -v prometheus || echo 'prometheus: not installed') / $(command -v prometheus-alertmanager || echo 'alertmanager: not installed')"
