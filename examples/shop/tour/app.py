"""Steps 2-4: the shop under ``otelperf run``, Locust load on it, and its stop (which flushes)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from examples.shop.tour.common import (
    APP_LOG,
    BIN,
    BUDGETS_FILE,
    LOG_DIR,
    OTLP_HTTP,
    ROOT,
    SERVICE,
    StepFailed,
    say,
    wait_until,
)
from otelperf import __version__
from otelperf.backends import BackendError, get_text
from otelperf.loadtest import LoadOptions, LoadTestError, run_load


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def service_env() -> dict[str, str]:
    out = subprocess.run(
        [str(ROOT / "scripts/services.sh"), "env"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return dict(line.split("=", 1) for line in out.split())


def app_command_and_env(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    base = f"http://127.0.0.1:{args.port}"
    # The user's own OTEL_*/OTELPERF_* settings would change what the demo shows: start clean.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELPERF_", "SHOP_"))}
    env.update(
        OTELPERF_SCHEDULE_DELAY="500ms",
        OTELPERF_METRIC_EXPORT_INTERVAL="2s",
        SHOP_INVENTORY_URL=base + "/internal/stock/{product_id}",
        # A fresh key space per run: the first lookups miss, so there are misses to show.
        SHOP_CACHE_PREFIX=f"demo-{int(time.time())}:",
        OTELPERF_BUDGETS_FILE=str(BUDGETS_FILE),
    )
    if not args.sqlite:
        urls = service_env()
        env["DATABASE_URL"] = urls["OTELPERF_TEST_POSTGRES_URL"].rsplit("/", 1)[0] + "/shop"
        env["REDIS_URL"] = urls["OTELPERF_TEST_REDIS_URL"]
    command = [str(BIN / "otelperf"), "run", "--service-name", SERVICE, "--service-version", __version__]
    command += ["--environment", "demo", "--endpoint", OTLP_HTTP, "--"]
    uvicorn = f"{BIN / 'uvicorn'} examples.shop.app:app --host 127.0.0.1 --port {args.port} --no-access-log"
    return command + uvicorn.split(), env


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    def answers() -> bool:
        if proc.poll() is not None:
            raise StepFailed("app start", f"the app exited with status {proc.returncode}", APP_LOG)
        try:
            get_text(url, timeout=1)
        except BackendError:
            return False
        return True

    if not wait_until(answers, timeout, every=0.25):
        raise StepFailed("app start", f"{url} did not answer within {timeout:.0f} s", APP_LOG)


def stop_app(proc: subprocess.Popen[bytes]) -> None:
    # Own session: signal the whole group, so the uvicorn process under `otelperf run` stops too.
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        say(f"WARNING: the app did not stop within 20 s of SIGINT and was killed (log: {APP_LOG})")


def run_app_under_load(args: argparse.Namespace) -> tuple[float, float, int]:
    """(unix time before the app started, after it stopped, load.py's exit status)."""
    command, env = app_command_and_env(args)
    database = env.get("DATABASE_URL", "SQLite (examples/shop.db)")
    say(f"database: {database}; cache: {env.get('REDIS_URL', 'in-process')}")
    say("app: " + " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command)))
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with APP_LOG.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{args.port}"
    try:
        wait_healthy(base + "/healthz", proc, timeout=90)
        say(f"app answers on {base} (log: {APP_LOG}); load for {args.duration:g} s")
        status = drive_load(args, base)
        cpu_bound_requests(base)
    finally:
        say("stopping the app (SIGINT: it flushes its telemetry on the way out)")
        stop_app(proc)
    if proc.returncode != 0:
        say(f"WARNING: the app exited with status {proc.returncode} (log: {APP_LOG})")
    if "Traceback" in APP_LOG.read_text(errors="replace"):
        say(f"WARNING: the app logged a traceback (log: {APP_LOG})")
    return started, time.time(), status


def cpu_bound_requests(base: str, count: int = 2) -> None:
    """Requests whose time is all Python (examples.shop.pricing): over the default 500 ms budget,
    so the latency-budget finding says which function the profiler saw the app time in."""
    say(f"{count} x GET /reports/discounts: CPU-bound Python, over its budget (the profiler's example)")
    for _ in range(count):
        try:
            get_text(base + "/reports/discounts", timeout=60)
        except BackendError as exc:  # the tour goes on; the findings step says what it found
            say(f"WARNING: GET /reports/discounts: {exc}")


def drive_load(args: argparse.Namespace, base: str) -> int:
    """The load: ``otelperf loadtest`` (Locust, budgets as thresholds), else ``examples/load.py``.
    0: every request answered; 1: some failed (the tables say which)."""
    if importlib.util.find_spec("locust") is None:
        say(
            "NOTE: Locust is not installed (`.venv/bin/pip install -e '.[loadtest]'`): no `otelperf "
            "loadtest` and no threshold table; examples/load.py drives the load instead"
        )
        load = [sys.executable, str(ROOT / "examples" / "load.py"), "--base-url", base]
        load += ["--duration", str(args.duration), "--concurrency", str(args.concurrency)]
        status = subprocess.run(load, cwd=ROOT, check=False).returncode
        if status not in (0, 1):  # 1: some requests failed (the table says which); else a crash
            raise StepFailed("load (examples/load.py)", f"exited with status {status}", APP_LOG)
        return status
    options = LoadOptions(
        scenario="mixed",
        duration_s=args.duration,
        users=args.users,
        host=base,
        budgets=str(BUDGETS_FILE),
        otlp_endpoint=OTLP_HTTP,
    )
    budgets = BUDGETS_FILE.relative_to(ROOT)
    say(
        f"load: otelperf loadtest --scenario mixed --duration {args.duration:g}s "
        f"--users {options.users_or_default()} --host {base} --budgets {budgets}"
    )
    try:
        run = run_load(options)
    except LoadTestError as exc:
        raise StepFailed("load (otelperf loadtest)", str(exc)) from exc
    if run.exit_code not in (0, 1):  # 0: thresholds passed, 1: some breached; else Locust failed
        raise StepFailed("load (otelperf loadtest)", f"Locust exited with status {run.exit_code}", APP_LOG)
    breached = [c for c in run.summary.get("checks", []) if not c.get("passed")]
    if breached:
        say(
            f"load: {len(breached)} budget threshold(s) breached, as the client saw them (table above); "
            "the alerts below judge the same budgets from the server's histograms"
        )
    else:
        say("load: every budget threshold passed, as the client saw it")
    # A few failures are the scenario's own races (a browsing user reads an order a CRUD user just
    # deleted: 404) and the error-rate thresholds above judge them; many mean the app is failing.
    total = run.summary.get("total", {})
    failures, requests = int(total.get("failures", 0)), int(total.get("requests", 0))
    if failures:
        say(f"load: {failures} of {requests} requests failed (Locust's error report above)")
    return 1 if failures > 0.1 * requests else 0
