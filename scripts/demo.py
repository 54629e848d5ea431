"""``make demo``: the example shop under otelperf, under load, for ~20 s.

Starts ``otelperf run -- uvicorn examples.shop.app:app`` (zero-code; falls back to the code-mode
switch ``SHOP_OTELPERF_INIT=1`` while the ``otelperf run`` command is not available), against the
PostgreSQL and Redis of ``scripts/services.sh``, waits for /healthz, runs examples/load.py and stops
the app. Telemetry goes to the OTLP endpoint (a local collector when one runs; otelperf only warns
when none answers).

    .venv/bin/python scripts/demo.py [--duration 20] [--port 8000] [--sqlite]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def otelperf_run_available() -> bool:
    exe = BIN / "otelperf"
    if not exe.exists():
        return False
    probe = subprocess.run([str(exe), "run", "--help"], capture_output=True, cwd=ROOT, check=False)
    return probe.returncode == 0


def service_env() -> dict[str, str]:
    out = subprocess.run(
        [str(ROOT / "scripts/services.sh"), "env"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return dict(line.split("=", 1) for line in out.split())


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"[demo] the app exited with status {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise SystemExit(f"[demo] {url} did not answer within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=int(os.environ.get("SHOP_PORT", "8000")))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--sqlite", action="store_true", help="use SQLite and the in-process cache")
    args = parser.parse_args()
    if not port_free(args.port):
        raise SystemExit(f"[demo] port {args.port} is in use; pass --port or set SHOP_PORT")

    base = f"http://127.0.0.1:{args.port}"
    env = dict(os.environ, OTEL_SERVICE_NAME="shop", SHOP_INVENTORY_URL=base + "/internal/stock/{product_id}")
    if not args.sqlite:
        urls = service_env()
        pg = urls["OTELPERF_TEST_POSTGRES_URL"].rsplit("/", 1)[0]
        env.update(DATABASE_URL=pg + "/shop", REDIS_URL=urls["OTELPERF_TEST_REDIS_URL"])
    uvicorn = [str(BIN / "uvicorn"), "examples.shop.app:app", "--host", "127.0.0.1", "--port", str(args.port)]
    uvicorn += ["--no-access-log"]
    if otelperf_run_available():
        command = [str(BIN / "otelperf"), "run", "--", *uvicorn]
        say("mode: zero-code (otelperf run -- uvicorn ...)")
    else:
        command = uvicorn
        env["SHOP_OTELPERF_INIT"] = "1"
        say("mode: code (SHOP_OTELPERF_INIT=1), because `otelperf run` is not available yet")
    database = env.get("DATABASE_URL", "SQLite (examples/shop.db)")
    say(f"database: {database}; cache: {env.get('REDIS_URL', 'in-process')}")
    say("starting: " + " ".join(command))
    log_path = ROOT / ".otelperf" / "logs" / "demo-app.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_healthy(base + "/healthz", proc, timeout=60)
        say(f"app answers on {base} (log: {log_path}); load for {args.duration:.0f} s")
        load = [sys.executable, str(ROOT / "examples" / "load.py"), "--base-url", base]
        load += ["--duration", str(args.duration), "--concurrency", str(args.concurrency)]
        status = subprocess.run(load, cwd=ROOT, check=False).returncode
    finally:
        say("stopping the app")
        # Own session: signal the whole group, so uvicorn workers under `otelperf run` stop too.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return status


if __name__ == "__main__":
    sys.exit(main())
