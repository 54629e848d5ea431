"""What does instrumentation cost per request? bare vs plain OpenTelemetry vs otelperf, side by side.

    .venv/bin/python benchmarks/overhead.py            # default: 5 interleaved rounds
    .venv/bin/python benchmarks/overhead.py --quick    # smoke run, seconds

Each arm runs benchmarks/bench_app.py in its own uvicorn process (1 worker, 127.0.0.1):

- ``bare``        .venv, no instrumentation (baseline of the otelperf arm)
- ``bare-plain``  .venv-plain, no instrumentation (baseline of the plain arm: same packages as plain,
                  SQLAlchemy 2.0, so SQLAlchemy 2.0 vs 2.1 does not leak into the plain arm's cost)
- ``plain``       .venv-plain under ``opentelemetry-instrument`` (contrib fastapi + sqlalchemy instrumentors)
- ``otelperf``    .venv under ``otelperf run`` (or ``otelperf.init()`` at import: ``--otelperf-mode init``)
- ``otelperf-prod`` the otelperf arm in production mode: ``OTELPERF_EXPORT_SHARE=--prod-share`` (0.1).
                  Every request is analyzed by all detectors; only traces with a finding or an error,
                  plus that share of the rest (by trace id), are exported

Both instrumented arms export OTLP/HTTP protobuf to benchmarks/otlp_sink.py with the same batch
settings (otelperf's defaults). Rounds interleave the arms (in a rotating order); every arm-round is
a fresh process: start, warm up, then per route a fixed number of requests at fixed concurrency
from this process over keep-alive connections, waiting after each route until the sink has every
span, so the server's CPU time (utime+stime from /proc, all threads: export included) is charged
to the route that caused it. SIGTERM then lets the server flush, and the sink's counts are checked:
one SERVER span per request sent, the same SERVER and DB-statement spans per request in plain and
otelperf, no span without its root. Otherwise the comparison is VOID.

The otelperf-prod arm exports a subset by design, so it is kept out of those checks. Its own check:
every exported trace is whole (its SERVER span and all the route's DB spans, no span without its
root) and the number of exported traces per route is within binomial noise of share x requests.
As the final count is not known in advance, the end of its flush is found by waiting for the sink
to go quiet; its CPU window ends at the poll that first saw the final count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paired  # wall clock as the median of per-round ratios

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = ROOT / ".venv"
PLAIN_VENV = ROOT / ".venv-plain"
# Plain auto-instrumentation, pinned to the SDK otelperf uses. SQLAlchemy 2.0: the contrib
# instrumentor declares sqlalchemy<2.1 and makes no DB spans at all on 2.1.
PLAIN_REQUIREMENTS = (
    "fastapi",
    "uvicorn",
    "sqlalchemy>=2.0,<2.1",
    "cachetools",
    "opentelemetry-distro==0.66b2",
    "opentelemetry-exporter-otlp-proto-http==1.45.2",
    "opentelemetry-instrumentation-fastapi==0.66b2",
    "opentelemetry-instrumentation-sqlalchemy==0.66b2",
    "opentelemetry-instrumentation-asgi==0.66b2",
    # testsuite.py's plain arm runs a pytest suite with Starlette's TestClient
    "pytest",
    "httpx",
)
ROUTES = ("/json", "/one-query", "/n-plus-one", "/cached", "/sync")
DB_STATEMENTS_PER_REQUEST = {"/json": 0, "/one-query": 1, "/n-plus-one": 11, "/cached": 0, "/sync": 2}
PROD_ARM = "otelperf-prod"
ARMS = ("bare", "bare-plain", "plain", "otelperf", PROD_ARM)
BASELINE = {"plain": "bare-plain", "otelperf": "bare", PROD_ARM: "bare"}
PROD_TARGET_RPS_RATIO = 0.85  # production mode keeps at least this share of bare req/s
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
FLUSH_TIMEOUT_S = 15.0
QUIET_S = 0.5
# Kept from the orchestrator's environment for the server arms (every other OTEL_*/OTELPERF_*
# variable is dropped so that no arm inherits settings by accident): issue 13 measures otelperf
# with its SDK fast paths on and forced off (OTELPERF_SDK_FAST_PATHS=0 python benchmarks/...).
PASS_THROUGH = ("OTELPERF_SDK_FAST_PATHS",)


def clean_env() -> dict[str, str]:
    """This process's environment without OTEL_*, OTELPERF_* and BENCH_* (but PASS_THROUGH)."""
    return {
        k: v
        for k, v in os.environ.items()
        if k in PASS_THROUGH or not k.startswith(("OTEL_", "OTELPERF_", "BENCH_"))
    }  # otelperf-prod: the sink's span count must stand still this long to count as flushed


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- environment ---------------------------------------------------------------------------------


def ensure_plain_venv(path: Path = PLAIN_VENV) -> Path:
    """Create the plain-OpenTelemetry venv if it is missing; return its python."""
    python = path / "bin" / "python"
    if (
        all((path / "bin" / tool).exists() for tool in ("opentelemetry-instrument", "pytest"))
        and python.exists()
    ):
        return python
    log(f"creating {path} for the plain arm (one time, about a minute)...")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    log(f"installing into {path}: {' '.join(PLAIN_REQUIREMENTS)}")
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PLAIN_REQUIREMENTS], check=True, timeout=900)
    log(f"{path} is ready")
    return python


def otelperf_batch_env() -> dict[str, str]:
    """OTEL_* variables that give plain OpenTelemetry otelperf's batch and metric settings."""
    try:
        from otelperf.config import Settings

        d = Settings()
        delay, queue, batch, timeout, interval = (
            d.schedule_delay,
            d.max_queue_size,
            d.max_export_batch_size,
            d.export_timeout,
            d.metric_export_interval,
        )
    except Exception:  # orchestrator run with another interpreter: otelperf's documented defaults
        delay, queue, batch, timeout, interval = 1.0, 8192, 512, 3.0, 10.0
    return {
        "OTEL_BSP_SCHEDULE_DELAY": str(int(delay * 1000)),
        "OTEL_BSP_MAX_QUEUE_SIZE": str(queue),
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": str(batch),
        "OTEL_BSP_EXPORT_TIMEOUT": str(int(timeout * 1000)),
        "OTEL_METRIC_EXPORT_INTERVAL": str(int(interval * 1000)),
    }


def otelperf_run_available() -> bool:
    exe = VENV / "bin" / "otelperf"
    if not exe.exists():
        return False
    try:
        done = subprocess.run([str(exe), "run", "--help"], check=False, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- processes -----------------------------------------------------------------------------------

_children: list[subprocess.Popen[bytes]] = []


def spawn(
    argv: list[str], env: dict[str, str], log_path: Path, stdout: int | None = None
) -> subprocess.Popen[bytes]:
    # Own session: the whole tree (otelperf run may fork) is stopped by its process group id.
    with open(log_path, "ab") as err:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=stdout or err,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM the process group (the server flushes on a graceful exit); SIGKILL after ``timeout``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
            return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the tree
    return True


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its live descendants, all threads (export threads included)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        # fields[1] is ppid; utime, stime are fields 14 and 15 of stat, i.e. [11] and [12] here.
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK)
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen or p not in stats:
            continue
        seen.add(p)
        total += stats[p][1]
        todo.extend(c for c, (ppid, _) in stats.items() if ppid == p)
    return total


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    # A bare TCP connect (no request) so readiness makes no span.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


# --- sink ----------------------------------------------------------------------------------------


class SinkClient:
    def __init__(self, log_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELPERF_"))}
        self.proc = spawn(
            [sys.executable, str(HERE / "otlp_sink.py"), "--port", "0"], env, log_path, stdout=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()  # the sink prints its address first
        if "http://" not in line:
            raise RuntimeError(f"otlp sink did not start (see {log_path}): {line!r}")
        self.url = line[line.index("http://") :]

    def _call(self, method: str, path: str) -> Any:
        req = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def counts(self, brief: bool = False) -> dict[str, Any]:
        return dict(self._call("GET", "/counts?brief=1" if brief else "/counts"))

    def reset(self) -> None:
        self._call("POST", "/reset")

    def wait_flushed(self, service: str, server_spans: int, timeout: float = FLUSH_TIMEOUT_S) -> bool:
        """Until ``service`` has ``server_spans`` SERVER spans and its span total stops moving."""
        deadline, last = time.monotonic() + timeout, -1
        while time.monotonic() < deadline:
            got = self.counts(brief=True)["services"].get(service, {"spans": 0, "server_spans": 0})
            if got["server_spans"] >= server_spans and got["spans"] == last:
                return True
            last = got["spans"]
            time.sleep(0.05)
        return False

    def wait_quiet(
        self, service: str, pid: int, min_wait: float, timeout: float = FLUSH_TIMEOUT_S
    ) -> tuple[bool, float]:
        """For an arm whose span count is not known in advance: wait ``min_wait`` (long enough for
        every span to have been handed to the exporter and sent), then until the count has not moved
        for QUIET_S. Returns (quiet, ``pid``'s CPU seconds at the poll that first saw the final count),
        so the idle wait is not charged to the route."""
        started = time.monotonic()
        deadline = started + max(timeout, min_wait + 2 * QUIET_S)
        last, changed_at, cpu_at_change = -1, started, tree_cpu_seconds(pid)
        while time.monotonic() < deadline:
            spans = self.counts(brief=True)["services"].get(service, {"spans": 0})["spans"]
            now = time.monotonic()
            if spans != last:
                last, changed_at, cpu_at_change = spans, now, tree_cpu_seconds(pid)
            elif now - started >= min_wait and now - changed_at >= QUIET_S:
                return True, cpu_at_change
            time.sleep(0.05)
        return False, cpu_at_change


# --- load ----------------------------------------------------------------------------------------


async def _one_connection(port: int, request: bytes, remaining: list[int], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while remaining[0] > 0:
            remaining[0] -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            if status != b"200":
                errors.append(status.decode())
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _load(
    port: int, path: str, requests: int, concurrency: int, timeout: float
) -> tuple[float, list[str]]:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: otelperf-bench\r\n\r\n".encode()
    remaining, errors = [requests], list[str]()
    started = time.perf_counter()
    tasks = [_one_connection(port, request, remaining, errors) for _ in range(min(concurrency, requests))]
    try:
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout)
    except asyncio.TimeoutError:
        return time.perf_counter() - started, [*errors, f"timeout after {timeout:.0f}s"]
    errors.extend(repr(r) for r in results if isinstance(r, BaseException))
    return time.perf_counter() - started, errors


def load(
    port: int, path: str, requests: int, concurrency: int, timeout: float | None = None
) -> tuple[float, list[str]]:
    """Send exactly ``requests`` GETs over ``concurrency`` keep-alive connections; (seconds, errors).
    ``timeout`` is for all of them (default: 0.2 s a request, at least 60 s)."""
    if timeout is None:
        timeout = max(60.0, requests * 0.2)
    return asyncio.run(_load(port, path, requests, concurrency, timeout=timeout))


# --- arms ----------------------------------------------------------------------------------------


@dataclass
class Arm:
    name: str
    argv_prefix: list[str]  # what goes before "python -m uvicorn ..."
    python: Path
    env: dict[str, str]
    service: str | None  # service.name in the sink, None when the arm exports nothing
    export_share: float = 1.0  # < 1: production mode, exports a subset (otelperf-prod)

    def argv(self, port: int) -> list[str]:
        return [
            *self.argv_prefix,
            str(self.python),
            "-m",
            "uvicorn",
            "bench_app:app",
            "--app-dir",
            str(HERE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            "asyncio",
            "--http",
            "h11",
            "--no-access-log",
            "--log-level",
            "warning",
        ]


def make_arms(
    names: tuple[str, ...], sink_url: str, db: str, otelperf_mode: str, prod_share: float = 0.1
) -> list[Arm]:
    base = clean_env()
    base.update(BENCH_DB=db, PYTHONUNBUFFERED="1")
    otel = {
        **otelperf_batch_env(),
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    plain_python = PLAIN_VENV / "bin" / "python"
    arms = {
        "bare": Arm("bare", [], VENV / "bin" / "python", {**base, "BENCH_ARM": "bare"}, None),
        "bare-plain": Arm("bare-plain", [], plain_python, {**base, "BENCH_ARM": "bare"}, None),
        "plain": Arm(
            "plain",
            [
                str(PLAIN_VENV / "bin" / "opentelemetry-instrument"),
                "--traces_exporter",
                "otlp",
                "--metrics_exporter",
                "otlp",
                "--logs_exporter",
                "none",
                "--service_name",
                "bench-plain",
            ],
            plain_python,
            {**base, **otel, "BENCH_ARM": "plain", "OTEL_SERVICE_NAME": "bench-plain"},
            "bench-plain",
        ),
        "otelperf": Arm(
            "otelperf",
            [str(VENV / "bin" / "otelperf"), "run", "--"] if otelperf_mode == "run" else [],
            VENV / "bin" / "python",
            {
                **base,
                **otel,
                "BENCH_ARM": "otelperf",
                "OTEL_SERVICE_NAME": "bench-otelperf",
                **({"BENCH_OTELPERF_INIT": "1"} if otelperf_mode == "init" else {}),
            },
            "bench-otelperf",
        ),
    }
    # The otelperf arm, changed in nothing but the export share and the service name it reports
    # under (BENCH_ARM stays "otelperf": the same app, cache instrumentation included).
    full = arms["otelperf"]
    arms[PROD_ARM] = Arm(
        PROD_ARM,
        full.argv_prefix,
        full.python,
        {**full.env, "OTEL_SERVICE_NAME": "bench-otelperf-prod", "OTELPERF_EXPORT_SHARE": str(prod_share)},
        "bench-otelperf-prod",
        prod_share,
    )
    return [arms[n] for n in names]


@dataclass
class ArmRound:
    arm: str
    round: int
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)  # requests per route, warm-up included
    rps: dict[str, float] = field(default_factory=dict)
    cpu_us: dict[str, float] = field(default_factory=dict)  # server CPU µs per request
    counts: dict[str, Any] = field(default_factory=dict)  # the sink's summary for this arm's service
    export_share: float = 1.0


def run_arm_round(arm: Arm, rnd: int, sink: SinkClient, opts: argparse.Namespace, logs: Path) -> ArmRound:
    result = ArmRound(arm.name, rnd, export_share=arm.export_share)
    # Production mode: the last spans reach the sink at most one detector wake-up plus one batch
    # delay after the last request (the batch processor exports on its timer).
    quiet_after = float(otelperf_batch_env()["OTEL_BSP_SCHEDULE_DELAY"]) / 1000 + 0.2 + 0.5
    sink.reset()
    port = free_port()
    proc = spawn(arm.argv(port), arm.env, logs / f"{arm.name}.log")
    try:
        if not wait_port(port, proc, START_TIMEOUT_S):
            result.ok = False
            result.problems.append(
                f"server did not start (exit {proc.poll()}; see {logs / (arm.name + '.log')})"
            )
            return result
        server_spans = 0
        for route in opts.routes:
            _, errors = load(port, route, opts.warmup, opts.concurrency)
            result.sent[route] = opts.warmup
            server_spans += opts.warmup
            if errors:
                result.problems.append(f"warm-up {route}: {len(errors)} errors, e.g. {errors[0]}")
        if arm.export_share < 1.0 and arm.service:
            if not sink.wait_quiet(arm.service, proc.pid, quiet_after)[0]:
                result.problems.append("warm-up spans did not stop arriving at the sink")
        elif arm.service and not sink.wait_flushed(arm.service, server_spans):
            result.problems.append("warm-up spans did not all reach the sink")
        for route in opts.routes:
            cpu0 = tree_cpu_seconds(proc.pid)
            seconds, errors = load(port, route, opts.requests, opts.concurrency)
            result.sent[route] += opts.requests
            server_spans += opts.requests
            if arm.export_share < 1.0 and arm.service:
                quiet, cpu1 = sink.wait_quiet(arm.service, proc.pid, quiet_after)
                if not quiet:
                    result.problems.append(f"{route}: spans still arriving after {FLUSH_TIMEOUT_S:.0f}s")
            else:
                if arm.service and not sink.wait_flushed(arm.service, server_spans):
                    result.problems.append(
                        f"{route}: spans did not all reach the sink within {FLUSH_TIMEOUT_S:.0f}s"
                    )
                cpu1 = tree_cpu_seconds(proc.pid)
            if errors:
                result.problems.append(f"{route}: {len(errors)} errors, e.g. {errors[0]}")
            result.rps[route] = opts.requests / seconds
            result.cpu_us[route] = (cpu1 - cpu0) / opts.requests * 1e6
    finally:
        if not stop(proc):
            result.problems.append("server did not exit on SIGTERM (killed; its last spans may be lost)")
    if arm.service:
        result.counts = sink.counts()["services"].get(arm.service, {})
        result.problems.extend(check_spans(result))
    result.ok = not result.problems
    return result


# --- span checks ---------------------------------------------------------------------------------


def per_request(result: ArmRound, route: str) -> dict[str, Any] | None:
    """Spans per request on ``route``, by category, from the traces whose root is that route."""
    for label, slot in result.counts.get("by_root", {}).items():
        name = label.rsplit(" [", 1)[0]
        if name.split(" ", 1)[-1] == route:
            n = slot["traces"]
            cats: dict[str, float] = {}
            for s in slot["spans"]:
                cats[s["category"]] = cats.get(s["category"], 0.0) + s["count"] / n
            names = sorted({f"{s['name']} [{s['kind']}]" for s in slot["spans"]})
            return {
                "traces": n,
                "with_findings": slot.get("with_findings", 0),
                "categories": cats,
                "names": names,
            }
    return None


def check_spans(result: ArmRound) -> list[str]:
    problems = []
    c = result.counts
    if not c:
        return ["the sink received nothing"]
    if c.get("ungrouped_spans"):
        problems.append(f"{c['ungrouped_spans']} spans over the sink's trace limit")
    orphans = c.get("by_root", {}).get("(no root span received)")
    if orphans:
        problems.append(f"{orphans['traces']} traces without their root span (dropped or unparented)")
    if result.export_share < 1.0:
        return problems + [p for route in result.sent for p in check_subset(result, route)]
    for route, sent in result.sent.items():
        pr = per_request(result, route)
        if pr is None:
            problems.append(f"{route}: no trace rooted at this route")
        elif pr["traces"] != sent:
            problems.append(f"{route}: {pr['traces']} traces for {sent} requests")
    return problems


def share_range(sent: int, share: float) -> tuple[int, int]:
    """Exported traces expected for ``sent`` requests at ``share``: the mean +- 4 binomial standard
    deviations (trace ids are random), +1 for rounding. For the requests without a finding (a
    finding keeps its trace: /n-plus-one's loop is one in many requests)."""
    mean, sd = sent * share, math.sqrt(sent * share * (1 - share))
    return max(0, math.floor(mean - 4 * sd - 1)), math.ceil(mean + 4 * sd + 1)


def check_subset(result: ArmRound, route: str) -> list[str]:
    """Production mode: each exported trace whole; every trace with a finding, and about share x
    the other requests."""
    sent, pr = result.sent[route], per_request(result, route)
    exported = pr["traces"] if pr else 0
    kept = pr["with_findings"] if pr else 0  # kept for their finding, whatever the share
    low, high = share_range(sent - kept, result.export_share)
    problems = []
    if not low <= exported - kept <= high:
        problems.append(
            f"{route}: {exported - kept} finding-free traces exported for {sent - kept} finding-free "
            f"requests at share {result.export_share:g} (expected {low}-{high}; {kept} with findings)"
        )
    if pr:
        # Every request of a route makes the same spans, so a mean of exactly 1 SERVER span and
        # exactly the route's DB spans per trace (with no rootless trace, checked above) means that
        # no exported trace lost a span.
        for cat in ("server", "db"):
            want = 1 if cat == "server" else DB_STATEMENTS_PER_REQUEST[route]
            got = pr["categories"].get(cat, 0.0)
            if abs(got - want) > 1e-9:
                problems.append(f"{route}: {cat} spans per exported trace {got:.3f}, expected {want}")
    return problems


def compare_spans(plain: ArmRound, otelperf: ArmRound, route: str) -> str | None:
    """None when both arms exported the same SERVER and DB-statement spans per request; else why not."""
    a, b = per_request(plain, route), per_request(otelperf, route)
    if a is None or b is None:
        return "no spans for this route in " + ("plain" if a is None else "otelperf")
    for cat in ("server", "db"):
        want = 1 if cat == "server" else DB_STATEMENTS_PER_REQUEST[route]
        pa, pb = a["categories"].get(cat, 0.0), b["categories"].get(cat, 0.0)
        if abs(pa - want) > 1e-9 or abs(pb - want) > 1e-9:
            return f"{cat} spans/request: plain {pa:.2f}, otelperf {pb:.2f}, expected {want}"
    return None


# --- report --------------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def _route_problems(rounds: list[ArmRound], route: str) -> list[str]:
    out = []
    for r in rounds:
        for p in r.problems:
            if not p.startswith("/") or p.startswith(route + ":"):
                out.append(f"{r.arm} round {r.round}: {p}")
    return out


def summarize(
    results: list[ArmRound], arms: list[str], routes: tuple[str, ...] | list[str] = ROUTES
) -> dict[str, Any]:
    by_arm = {a: [r for r in results if r.arm == a] for a in arms}
    table: dict[str, Any] = {}
    for route in routes:
        row: dict[str, Any] = {"arms": {}}
        for arm, rounds in by_arm.items():
            rps = [r.rps[route] for r in rounds if route in r.rps]
            cpu = [r.cpu_us[route] for r in rounds if route in r.cpu_us]
            last = next((r for r in reversed(rounds) if r.counts), None)
            row["arms"][arm] = {
                "rps": _median(rps),
                "cpu_us": _median(cpu),
                "cpu_us_min": min(cpu, default=None),
                "cpu_us_max": max(cpu, default=None),
                "rounds": len(rps),
                "spans": per_request(last, route) if last else None,
            }
        arms_row = row["arms"]

        def get(arm: str, key: str, arms_row: dict[str, Any] = arms_row) -> Any:
            return arms_row.get(arm, {}).get(key)

        if get("otelperf", "rps") and get("bare", "rps"):
            row["otelperf_vs_bare_rps"] = get("otelperf", "rps") / get("bare", "rps")
        if get("otelperf", "rps") and get("plain", "rps"):
            row["otelperf_vs_plain_rps"] = get("otelperf", "rps") / get("plain", "rps")
        for label, plain_base in (("added_cost", "bare-plain"), ("added_cost_common_bare", "bare")):
            o, p, b, pb = (
                get("otelperf", "cpu_us"),
                get("plain", "cpu_us"),
                get("bare", "cpu_us"),
                get(plain_base, "cpu_us"),
            )
            if None not in (o, p, b, pb) and p - pb > 0:
                row[label] = (o - b) / (p - pb)
        reasons = _route_problems(by_arm.get("plain", []) + by_arm.get("otelperf", []), route)
        if not by_arm.get("plain") or not by_arm.get("otelperf"):
            reasons.append("plain or otelperf arm not run")
        for p_round, o_round in zip(by_arm.get("plain", []), by_arm.get("otelperf", []), strict=False):
            if p_round.counts and o_round.counts:
                why = compare_spans(p_round, o_round, route)
                if why:
                    reasons.append(f"round {p_round.round}: {why}")
        row["void"] = sorted(set(reasons))
        if by_arm.get(PROD_ARM):
            summarize_prod(row, by_arm, route)
        table[route] = row
    return table


def summarize_prod(row: dict[str, Any], by_arm: dict[str, list[ArmRound]], route: str) -> None:
    """The production-mode figures: req/s against bare beside the full-export arm's, added cost."""
    arms_row = row["arms"]
    prod, bare = arms_row[PROD_ARM], arms_row.get("bare", {})
    if prod["rps"] and bare.get("rps"):
        row["prod_vs_bare_rps"] = prod["rps"] / bare["rps"]
    cpu = {a: arms_row.get(a, {}).get("cpu_us") for a in (PROD_ARM, "bare", "plain", "bare-plain")}
    if None not in cpu.values() and cpu["plain"] - cpu["bare-plain"] > 0:
        row["prod_added_cost"] = (cpu[PROD_ARM] - cpu["bare"]) / (cpu["plain"] - cpu["bare-plain"])
    rounds = [r for r in by_arm[PROD_ARM] if r.counts]
    row["prod_sent"] = sum(r.sent.get(route, 0) for r in rounds)
    row["prod_exported"] = sum((per_request(r, route) or {"traces": 0})["traces"] for r in rounds)
    row["prod_with_findings"] = sum((per_request(r, route) or {}).get("with_findings", 0) for r in rounds)
    reasons = _route_problems(by_arm[PROD_ARM], route)
    if not by_arm.get("bare"):
        reasons.append("bare arm not run")
    row["prod_void"] = sorted(set(reasons))


def print_report(table: dict[str, Any], arms: list[str], header: list[str], share: float = 0.1) -> None:
    print()
    for line in header:
        print(line)
    print()
    cats = ("server", "db", "db-other", "asgi-message", "cache", "other")
    w = max(11, *(len(a) for a in arms))
    print(
        f"{'route':<12} {'arm':<{w}} {'req/s':>8} {'CPU µs/req':>11} {'(min-max)':>15}  spans/req = "
        + " ".join(cats)
    )
    for route, row in table.items():
        for arm in arms:
            a = row["arms"][arm]
            rng = f"({_fmt(a['cpu_us_min'])}-{_fmt(a['cpu_us_max'])})" if a["cpu_us"] is not None else ""
            spans = "-"
            if a["spans"]:
                c = a["spans"]["categories"]
                spans = f"{sum(c.values()):5.2f} = " + " ".join(f"{c.get(k, 0):g}" for k in cats)
            print(f"{route:<12} {arm:<{w}} {_fmt(a['rps']):>8} {_fmt(a['cpu_us']):>11} {rng:>15}  {spans}")
        print()
    print("otelperf vs the others, medians over rounds. added cost, from CPU per request:")
    print("  (otelperf - bare) / (plain - bare-plain), target <= 0.5")
    print("  common bare: (otelperf - bare) / (plain - bare)")
    heads = ("o/bare rps", "o/plain rps", "added cost", "common bare")
    print(f"{'route':<12} {' '.join(heads)}  verdict")
    for route, row in table.items():
        verdict = "VOID: " + "; ".join(row["void"][:3]) if row["void"] else "ok"
        if not row["void"] and "added_cost" in row:
            verdict = "ok, target met" if row["added_cost"] <= 0.5 else "ok, target NOT met"
        ratios = [
            _fmt(row.get(key), ".2f").rjust(width)
            for key, width in (
                ("otelperf_vs_bare_rps", 10),
                ("otelperf_vs_plain_rps", 11),
                ("added_cost", 10),
                ("added_cost_common_bare", 11),
            )
        ]
        print(f"{route:<12} {' '.join(ratios)}  {verdict}")
    if PROD_ARM in arms:
        print_prod(table, share)
    print()
    print("span sets per request (last round of each arm):")
    for route, row in table.items():
        for arm in arms:
            s = row["arms"][arm]["spans"]
            if s:
                print(f"  {route:<12} {arm:<9} {', '.join(s['names'])}")


def print_prod(table: dict[str, Any], share: float) -> None:
    print()
    print(f"production mode ({PROD_ARM}: OTELPERF_EXPORT_SHARE={share:g}, all detectors on), medians:")
    print(f"  prod/bare rps: target >= {PROD_TARGET_RPS_RATIO}; o/bare rps: the full-export otelperf arm")
    print("  added cost: (arm - bare) / (plain - bare-plain), CPU per request")
    print(
        "  exported: traces the sink received / requests sent (warm-up included), all rounds; "
        "traces with a finding are all kept"
    )
    heads = ("prod/bare rps", "o/bare rps", "prod added", "o added", "exported")
    print(f"{'route':<12} {heads[0]:>13} {heads[1]:>10} {heads[2]:>10} {heads[3]:>8} {heads[4]:>17}  verdict")
    for route, row in table.items():
        if "prod_void" not in row:
            continue
        ratio = row.get("prod_vs_bare_rps")
        verdict = "VOID: " + "; ".join(row["prod_void"][:3]) if row["prod_void"] else "ok"
        if not row["prod_void"] and ratio is not None:
            verdict = "ok, target met" if ratio >= PROD_TARGET_RPS_RATIO else "ok, target NOT met"
        sent, exported = row["prod_sent"], row["prod_exported"]
        frac = f"{exported}/{sent} = {exported / sent:.3f}" if sent else "-"
        if row.get("prod_with_findings"):
            verdict += f" ({row['prod_with_findings']} of them kept for a finding)"
        print(
            f"{route:<12} {_fmt(ratio, '.2f'):>13} {_fmt(row.get('otelperf_vs_bare_rps'), '.2f'):>10} "
            f"{_fmt(row.get('prod_added_cost'), '.2f'):>10} {_fmt(row.get('added_cost'), '.2f'):>8} "
            f"{frac:>17}  {verdict}"
        )


def _versions(python: Path) -> str:
    code = (
        "import sqlalchemy, fastapi, uvicorn; "
        "print(sqlalchemy.__version__, fastapi.__version__, uvicorn.__version__)"
    )
    try:
        out = subprocess.run(
            [str(python), "-c", code], check=False, capture_output=True, text=True, timeout=60
        ).stdout.split()
        return f"SQLAlchemy {out[0]}, fastapi {out[1]}, uvicorn {out[2]}"
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bare vs plain OpenTelemetry vs otelperf, per request")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=500, help="measured requests per route per round")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up requests per route per arm-round")
    # 8 connections for 1 worker: more requests in flight than the thread pool runs at once is
    # what a busy server sees (issue 13 measured the sync route this way).
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--routes", default=",".join(ROUTES), help=f"comma-separated subset of {','.join(ROUTES)}"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 100 requests, 20 warm-up")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {','.join(ARMS)}")
    parser.add_argument(
        "--otelperf-mode",
        choices=("auto", "run", "init"),
        default="auto",
        help="otelperf arm: `otelperf run -- ...` or otelperf.init() at import; auto = run if available",
    )
    parser.add_argument(
        "--prod-share",
        type=float,
        default=0.1,
        help=f"{PROD_ARM} arm: OTELPERF_EXPORT_SHARE, the share of finding-free traces it exports",
    )
    parser.add_argument(
        "--time-limit", type=float, default=2400, help="stop starting rounds after this many seconds"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the servers' logs and the DB (printed)"
    )
    opts = parser.parse_args(argv)
    if opts.quick:
        opts.rounds, opts.requests, opts.warmup = 1, 100, 20
    arms = [a.strip() for a in opts.arms.split(",") if a.strip()]
    if unknown := [a for a in arms if a not in ARMS]:
        parser.error(f"unknown arm(s) {unknown}; choose from {ARMS}")
    opts.routes = [r.strip() for r in opts.routes.split(",") if r.strip()]
    if unknown := [r for r in opts.routes if r not in ROUTES]:
        parser.error(f"unknown route(s) {unknown}; choose from {ROUTES}")
    if not 0.0 < opts.prod_share < 1.0:
        parser.error("--prod-share must be between 0 and 1 (exclusive): 1 is the otelperf arm")
    if not (VENV / "bin" / "python").exists():
        parser.error(f"{VENV} is missing: run `make setup` first")
    if {"plain", "bare-plain"} & set(arms):
        ensure_plain_venv()
    mode = opts.otelperf_mode
    if mode == "auto":
        mode = "run" if otelperf_run_available() else "init"
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    work = Path(tempfile.mkdtemp(prefix="otelperf-bench-"))
    results: list[ArmRound] = []
    started = time.monotonic()
    try:
        db = str(work / "bench.db")
        subprocess.run(
            [str(VENV / "bin" / "python"), str(HERE / "bench_app.py"), "--seed", db],
            check=True,
            timeout=120,
            capture_output=True,
            env={**os.environ, "BENCH_ARM": "bare"},
        )
        sink = SinkClient(work / "sink.log")
        header = [
            f"otelperf overhead: {opts.rounds} round(s) x {opts.requests} requests/route "
            f"(+{opts.warmup} warm-up), concurrency {opts.concurrency}, {os.cpu_count()} CPUs, "
            f"otelperf mode: {mode}",
            f".venv: {_versions(VENV / 'bin' / 'python')}; "
            f".venv-plain: {_versions(PLAIN_VENV / 'bin' / 'python')}",
            "batch settings for both instrumented arms: "
            + " ".join(f"{k}={v}" for k, v in otelperf_batch_env().items()),
        ]
        if PROD_ARM in arms:
            header.append(
                f"{PROD_ARM}: the otelperf arm with OTELPERF_EXPORT_SHARE={opts.prod_share:g} "
                "(exports traces with findings/errors + that share of the rest)"
            )
        log(header[0])
        arm_list = make_arms(tuple(arms), sink.url, db, mode, opts.prod_share)
        for rnd in range(1, opts.rounds + 1):
            if time.monotonic() - started > opts.time_limit:
                log(f"time limit reached: stopping after {rnd - 1} round(s)")
                break
            shift = (rnd - 1) % len(arm_list)
            for arm in arm_list[shift:] + arm_list[:shift]:  # rotate so no arm always goes first
                r = run_arm_round(arm, rnd, sink, opts, work)
                results.append(r)
                brief = " ".join(
                    f"{rt} {r.rps.get(rt, 0):.0f}/s {r.cpu_us.get(rt, 0):.0f}µs" for rt in opts.routes
                )
                log(f"round {rnd} {arm.name:<10} {brief}" + ("" if r.ok else f"  PROBLEMS: {r.problems[:3]}"))
        table = summarize(results, arms, opts.routes)
        print_report(table, arms, header, opts.prod_share)
        wall = paired.summarize_wall(results, arms, opts.routes)
        paired.print_wall(wall)
        if opts.json:
            opts.json.write_text(
                json.dumps(
                    {
                        "header": header,
                        "table": table,
                        "wall_paired": paired.as_json(wall),
                        "rounds": [r.__dict__ for r in results],
                    },
                    indent=1,
                    default=str,
                )
            )
        problems = [p for r in results for p in r.problems]
        if problems:
            print(f"\n{len(problems)} problem(s); server logs kept in {work}")
            for p in sorted(set(problems))[:20]:
                print(f"  - {p}")
        return 0
    finally:
        for proc in _children:
            stop(proc, timeout=5)
        if opts.keep_logs:
            print(f"logs kept in {work}")
        elif not any(r.problems for r in results):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
