"""What every step of the tour shares: where things are, the backend clients, how a step fails."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from otelperf.backends import Alertmanager, Jaeger, Prometheus

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
LOG_DIR = ROOT / ".otelperf" / "logs"
APP_LOG = LOG_DIR / "demo-app.log"
REPORT_HTML = ROOT / ".otelperf" / "demo-report.html"
SERVICE = "shop"
# One budget for everything: the detectors (OTELPERF_BUDGETS_FILE), the load test's thresholds and
# the Prometheus alerts (prometheus/rules/otelperf.rules.yml is generated from this file).
BUDGETS_FILE = ROOT / "examples" / "shop" / "otelperf.toml"
OTLP_HTTP = "http://127.0.0.1:4318"
COLLECTOR_METRICS = "http://127.0.0.1:8888/metrics"
JAEGER_METRICS = "http://127.0.0.1:14269/metrics"
FINDING_EVENT = "otelperf.finding"

# The local stack's backends (loopback defaults of otelperf.backends).
jaeger = Jaeger(timeout=30.0)  # a search over a whole run's traces takes seconds
prometheus = Prometheus()
alertmanager = Alertmanager()


class StepFailed(Exception):
    def __init__(self, step: str, message: str, log: Path | None = None) -> None:
        see = f" (log: {log})" if log else ""
        super().__init__(f"FAILED at step '{step}'{see}:\n{message}")


def say(message: str = "") -> None:
    print(f"[demo] {message}" if message else "", flush=True)


def wait_until(check: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)


def clock(unix: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(unix))


def relative(path: Path) -> Path:
    return path.relative_to(ROOT)
