"""Zero-code instrumentation in real processes: `otelperf run` and `opentelemetry-instrument`.

Each test starts uvicorn as a separate process tree exporting to a loopback OTLP sink and checks
what arrives there: one SERVER span per request (named by route) with its DB span, from every
worker process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from otelperf.testing import OTLPSink, SinkSpan

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sink() -> Iterator[OTLPSink]:
    with OTLPSink() as s:
        yield s


def _start(cmd: list[str], sink: OTLPSink, **extra_env: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "PYTEST_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
        OTELPERF_SCHEDULE_DELAY="100ms",
        OTELPERF_METRIC_EXPORT_INTERVAL="1s",
        PYTHONPATH=str(ROOT),
        **extra_env,
    )
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"server exited early ({proc.returncode}):\n{out}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/pid/warmup", timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail("server did not become ready")


def _stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.stdout.read().decode() if proc.stdout else ""


def _drive(port: int, count: int) -> set[int]:
    pids: set[int] = set()
    for i in range(count):
        # A new connection per request lets the kernel spread them over the workers.
        r = httpx.get(f"http://127.0.0.1:{port}/pid/req-{i}", headers={"Connection": "close"}, timeout=5.0)
        r.raise_for_status()
        pids.add(r.json()["pid"])
    return pids


def _server_spans(spans: list[SinkSpan]) -> list[SinkSpan]:
    return [
        s
        for s in spans
        if s.kind == "SERVER" and str(s.attributes.get("url.path", "")).startswith("/pid/req-")
    ]


def _assert_one_trace_per_request(spans: list[SinkSpan], count: int, pids: set[int]) -> None:
    server = _server_spans(spans)
    assert len(server) == count, f"expected {count} SERVER spans, got {len(server)}"
    assert {s.name for s in server} == {"GET /pid/{tag}"}
    assert {s.resource["process.pid"] for s in server} == pids
    db = [s for s in spans if s.kind == "CLIENT" and s.attributes.get("db.system.name") == "sqlite"]
    by_id = {s.span_id: s for s in server}
    children = [s for s in db if s.parent_span_id in by_id]
    assert len(children) == count, f"expected one DB span under each request, got {len(children)}"
    assert len({s.trace_id for s in server}) == count


def test_otelperf_run_instruments_every_uvicorn_worker(sink: OTLPSink) -> None:
    port = _free_port()
    proc = _start(
        [
            str(BIN / "otelperf"),
            "run",
            "--service-name",
            "workers",
            "--",
            str(BIN / "python"),
            "-m",
            "uvicorn",
            "tests.apps.workers_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        sink,
    )
    try:
        _wait_ready(port, proc)
        count = 60
        pids = _drive(port, count)
        assert len(pids) == 2, f"requests reached {len(pids)} worker(s); expected both"
    finally:
        output = _stop(proc)
    spans = sink.wait_for_spans(lambda s: len(_server_spans(s)) >= count, timeout=15)
    assert "Traceback" not in output, output
    _assert_one_trace_per_request(spans, count, pids)
    assert {s.resource["service.name"] for s in spans} == {"workers"}
    names = {m.name for m in sink.metrics}
    assert "http.server.request.duration" in names
    assert "db.client.operation.duration" in names


def test_opentelemetry_instrument_uses_the_otelperf_distro(sink: OTLPSink) -> None:
    """Under plain `opentelemetry-instrument`, with contrib instrumentors installed, every
    operation still yields exactly one span: otelperf's distro skips the duplicates."""
    port = _free_port()
    proc = _start(
        [
            str(BIN / "opentelemetry-instrument"),
            str(BIN / "python"),
            "-m",
            "uvicorn",
            "tests.apps.workers_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        sink,
        OTEL_SERVICE_NAME="distro",
        OTEL_PYTHON_DISTRO="otelperf",
        APP_CALLS_OTELPERF_INIT="1",
    )
    try:
        _wait_ready(port, proc)
        count = 10
        pids = _drive(port, count)
    finally:
        output = _stop(proc)
    spans = sink.wait_for_spans(lambda s: len(_server_spans(s)) >= count, timeout=15)
    assert "Traceback" not in output, output
    _assert_one_trace_per_request(spans, count, pids)
    assert {s.resource["service.name"] for s in spans} == {"distro"}


def test_otelperf_run_refuses_bad_configuration_in_strict_mode() -> None:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}
    result = subprocess.run(
        [str(BIN / "otelperf"), "run", "--strict", "--", str(BIN / "python"), "-c", "print('ran')"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='thrift'" in result.stderr
    assert "ran" not in result.stdout


def test_otelperf_run_reports_missing_command() -> None:
    result = subprocess.run(
        [str(BIN / "otelperf"), "run", "--", "no-such-command-xyz"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 127
    assert "command not found: no-such-command-xyz" in result.stderr


def test_otelperf_run_starts_otelperf_and_keeps_an_existing_sitecustomize(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.USER_SITECUSTOMIZE_RAN = True\n")
    probe = (
        "import builtins, otelperf._runtime.setup as s; r = s.current(); "
        "print(getattr(builtins, 'USER_SITECUSTOMIZE_RAN', False), r is not None and r.enabled, "
        "r.settings.service_name if r else None)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "PYTEST_"))}
    env["PYTHONPATH"] = str(tmp_path)
    result = subprocess.run(
        [
            str(BIN / "otelperf"),
            "run",
            "--service-name",
            "probe",
            "--instrument",
            "none",
            "--",
            str(BIN / "python"),
            "-c",
            probe,
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "probe"]
