"""Run one Locust scenario headless, as a child process, and read back what it measured.

Locust runs in its own process because it monkey-patches the standard library with gevent at
import; the otelperf command (and the baseline code that calls it between Prometheus queries)
stays an ordinary process. The child's output (progress lines, Locust's summary, the threshold
table) goes straight to the terminal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCENARIOS = ("login", "endpoints", "crud", "files", "mixed")
DEFAULT_USERS = {"login": 50, "endpoints": 10, "crud": 10, "files": 5, "mixed": 20}
_DURATION_RE = re.compile(r"^\s*(?:(\d+)h)?\s*(?:(\d+)m(?!s))?\s*(?:(\d+)s)?\s*$")


class LoadTestError(RuntimeError):
    """The load test could not run (no locust, no locustfile, bad option)."""


def parse_duration(text: str) -> float:
    """``"10s"``, ``"2m"``, ``"1m30s"``, ``"1h"`` or a number of seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION_RE.match(text)
    if not match or not any(match.groups()):
        raise LoadTestError(f"duration {text!r}: use seconds or e.g. 10s, 2m, 1m30s")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def default_locust_dir() -> Path:
    """``examples/loadtest`` of the working directory, else of this otelperf checkout."""
    here = Path.cwd() / "examples" / "loadtest"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "examples" / "loadtest"


@dataclass
class LoadOptions:
    scenario: str = "mixed"
    duration_s: float = 30.0
    users: int | None = None
    spawn_rate: float | None = None
    host: str = "http://127.0.0.1:8000"
    budgets: str | None = None
    locustfile: str | None = None  # overrides the scenario's file
    otlp_endpoint: str | None = None
    check_throughput: bool = True
    extra_args: list[str] = field(default_factory=list)

    def users_or_default(self) -> int:
        return self.users if self.users is not None else DEFAULT_USERS.get(self.scenario, 10)


@dataclass(frozen=True)
class LoadRun:
    exit_code: int  # 0 thresholds passed, 1 breached, other: Locust failed
    started: float  # unix seconds
    finished: float
    summary: dict[str, Any]  # the plugin's --otelperf-summary document ({} when it wrote none)
    options: LoadOptions

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


def locustfile_for(options: LoadOptions) -> Path:
    if options.locustfile:
        path = Path(options.locustfile)
    else:
        if options.scenario not in SCENARIOS:
            raise LoadTestError(f"unknown scenario {options.scenario!r}; one of: {', '.join(SCENARIOS)}")
        path = default_locust_dir() / f"{options.scenario}.py"
    if not path.is_file():
        raise LoadTestError(f"locustfile not found: {path} (give --locustfile)")
    return path


STOP_TIMEOUT_S = 5  # seconds Locust gives running tasks to finish after --run-time
DEADLINE_GRACE_S = 30.0  # start-up, spawning, summary


def locust_command(options: LoadOptions, summary_path: str) -> list[str]:
    users = options.users_or_default()
    spawn_rate = options.spawn_rate or max(1.0, users / 2)  # everyone in within ~2 s
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile_for(options)),
        "--headless",
        "--only-summary",  # our one-line progress instead of a table every 2 s
        "--users",
        str(users),
        "--spawn-rate",
        f"{spawn_rate:g}",
        "--run-time",
        f"{max(1, round(options.duration_s))}s",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--host",
        options.host,
        "--scenario-name",
        options.scenario,
        "--otelperf-summary",
        summary_path,
        "--loglevel",
        "WARNING",
    ]
    if options.budgets:
        command += ["--budgets", options.budgets]
    if options.otlp_endpoint:
        command += ["--otlp-endpoint", options.otlp_endpoint]
    if not options.check_throughput:
        command.append("--no-throughput-check")
    return command + options.extra_args


def run_load(options: LoadOptions) -> LoadRun:
    """Run the scenario to its end; Ctrl-C stops Locust gracefully (it still prints its summary)."""
    try:
        import locust  # noqa: F401
    except ImportError as exc:
        raise LoadTestError("Locust is not installed: pip install 'otelperf[loadtest]'") from exc
    with tempfile.TemporaryDirectory(prefix="otelperf-loadtest-") as tmp:
        summary_path = os.path.join(tmp, "summary.json")
        command = locust_command(options, summary_path)
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        started = time.time()
        proc = subprocess.Popen(command, env=env)
        # Locust stops itself at --run-time (+ --stop-timeout); past this, something hangs.
        deadline_s = options.duration_s + STOP_TIMEOUT_S + DEADLINE_GRACE_S
        try:
            exit_code = proc.wait(timeout=deadline_s)
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            exit_code = proc.wait()
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # Locust still writes its summary on SIGINT
            try:
                proc.wait(timeout=STOP_TIMEOUT_S + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise LoadTestError(
                f"Locust did not stop within {deadline_s:.0f} s of a {options.duration_s:g} s run "
                "(stuck requests?); it was interrupted"
            ) from None
        finished = time.time()
        try:
            summary: dict[str, Any] = json.loads(Path(summary_path).read_text())
        except (OSError, ValueError):
            summary = {}
    return LoadRun(exit_code, started, finished, summary, options)
