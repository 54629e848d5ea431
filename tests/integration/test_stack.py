"""`otelperf stack` for real: collector, Jaeger and Prometheus on loopback, a span through them.

These tests own the stack's fixed ports while they run, so they need them free: an otelperf stack
already running (`otelperf stack down`) makes them skip locally and fail under CI. Missing binaries
(`scripts/install_stack.sh`) likewise skip locally and fail under CI.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from tests.conftest import skip_or_fail

from otelperf.backends import BackendError, Jaeger, Trace
from otelperf.cli import main
from otelperf.stack import Stack, StackError
from otelperf.stack.components import CORE, find_binary
from otelperf.stack.manager import started_by_this_process
from otelperf.stack.ports import find_holder, port_in_use

pytestmark = pytest.mark.slow

STACK_PORTS = sorted({port.number for component in CORE for port in component.ports})


@pytest.fixture(scope="module")
def binaries_installed() -> None:
    missing = []
    for component in CORE:
        try:
            find_binary(component, os.environ)
        except StackError as exc:
            missing.append(str(exc))
    if missing:
        skip_or_fail("\n".join(missing))


@pytest.fixture
def stack_ports_free(binaries_installed: None) -> None:
    busy = [port for port in STACK_PORTS if port_in_use(port)]
    holders = [find_holder(port) for port in busy]
    if busy and all(h is not None and started_by_this_process(h.pid) for h in holders):
        # This pytest session's own end-to-end stack: legitimate, and it stays up for those tests.
        skip_or_fail(
            "this test session already runs a stack (for the end-to-end tests) on these ports: "
            "run tests/integration/test_stack.py before them or on its own"
        )
    if busy:
        skip_or_fail(
            f"stack ports {busy} are in use (an otelperf stack already running?): these tests start "
            "their own; stop it with `otelperf stack down`"
        )


@pytest.fixture
def stack(tmp_path: Path, stack_ports_free: None) -> Iterator[Stack]:
    stack = Stack(state_dir=tmp_path / "state", with_alertmanager=False)
    try:
        yield stack
    finally:
        stack.down()


def _send_span(name: str) -> str:
    """One span over OTLP/HTTP to the collector; returns its trace id (32 hex)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "otelperf-stack-test"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint="http://127.0.0.1:4318/v1/traces", timeout=5))
    )
    with provider.get_tracer("tests.integration.test_stack").start_as_current_span(name) as span:
        trace_id = span.get_span_context().trace_id
    provider.shutdown()
    return format(trace_id, "032x")


def _jaeger_trace(trace_id: str, timeout: float) -> Trace:
    jaeger = Jaeger(timeout=2)
    deadline = time.monotonic() + timeout
    last = "no spans yet"
    while time.monotonic() < deadline:
        try:
            trace = jaeger.trace(trace_id)
            if trace.spans:
                return trace
        except BackendError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise AssertionError(f"trace {trace_id} not in Jaeger after {timeout} s ({last})")


def _span_names(trace: Trace) -> list[str]:
    return [span.name for span in trace.spans]


def test_up_carries_a_span_to_jaeger_and_down_frees_the_ports(stack: Stack) -> None:
    result = stack.up(timeout=60)
    assert result.started == ["jaeger", "prometheus", "collector"]
    assert result.urls["Jaeger UI/API"] == "http://127.0.0.1:16686"

    status = stack.status()
    assert status.all_up, status.to_dict()
    assert [(c.name, c.running, c.healthy) for c in status.components] == [
        ("jaeger", True, True),
        ("prometheus", True, True),
        ("collector", True, True),
    ]
    assert all(c.pid and Path(f"/proc/{c.pid}").exists() for c in status.components)

    again = stack.up(timeout=10)
    assert again.started == []
    assert again.already_running == ["jaeger", "prometheus", "collector"]

    trace_id = _send_span("stack-smoke")
    assert _span_names(_jaeger_trace(trace_id, timeout=20)) == ["stack-smoke"]

    deadline = time.monotonic() + 10
    flow = stack.status().telemetry
    while (flow is None or flow.sent < 1) and time.monotonic() < deadline:
        time.sleep(0.3)
        flow = stack.status().telemetry
    assert flow is not None
    assert flow.accepted >= 1 and flow.sent >= 1 and flow.refused == 0 and flow.send_failed == 0
    assert flow.flowing

    pids = [c.pid for c in status.components]
    messages = stack.down()
    assert [m.split(":")[0] for m in messages] == ["collector", "prometheus", "jaeger"]
    assert all("stopped pid" in m for m in messages), messages
    assert [port for port in STACK_PORTS if port_in_use(port)] == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    after = stack.status()
    assert not any(c.running for c in after.components)
    assert after.telemetry is None


def test_cli_up_status_down(
    tmp_path: Path, stack_ports_free: None, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(tmp_path / "state")
    try:
        assert main(["stack", "up", "--state-dir", state, "--without-alertmanager"]) == 0
        out = capsys.readouterr().out
        assert "stack up in" in out and "http://127.0.0.1:16686" in out and "http://127.0.0.1:9090" in out

        assert main(["stack", "up", "--state-dir", state, "--without-alertmanager"]) == 0
        assert "stack already running (jaeger, prometheus, collector)" in capsys.readouterr().out

        assert main(["stack", "status", "--state-dir", state, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["all_up"] is True
        assert report["telemetry"]["refused"] == 0

        assert main(["stack", "logs", "collector", "-n", "200", "--state-dir", state]) == 0
        assert "Everything is ready" in capsys.readouterr().out
    finally:
        assert main(["stack", "down", "--state-dir", state, "--purge"]) == 0
    out = capsys.readouterr().out
    assert "collector: stopped pid" in out and "purged" in out
    assert not Path(state).exists()
    assert main(["stack", "status", "--state-dir", state]) == 3
    assert capsys.readouterr().out.count("stopped") == 3


def test_port_taken_gives_the_fix_and_starts_nothing(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do (TIME_WAIT)
        blocker.bind(("127.0.0.1", 16686))
        blocker.listen()
        with pytest.raises(StackError) as caught:
            stack.up(timeout=30)
        message = str(caught.value)
        assert (
            f"port 16686 (Jaeger query HTTP/UI) is in use by pid {os.getpid()} (" in message
            and "— stop it or run `otelperf stack down`" in message
        ), message
        assert [port for port in STACK_PORTS if port != 16686 and port_in_use(port)] == []
        assert stack.state.recorded() == []

        rc = main(["stack", "up", "--state-dir", str(stack.state_dir)])
        assert rc == 1
        assert "port 16686 (Jaeger query HTTP/UI) is in use by pid" in capsys.readouterr().err
    assert not any(c.running for c in stack.status().components)


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_component_that_dies_shows_its_log_and_the_rest_is_stopped(
    tmp_path: Path, stack_ports_free: None
) -> None:
    broken = _script(tmp_path / "otelcol-broken", 'echo "error decoding config: boom" >&2\nexit 1\n')
    stack = Stack(
        state_dir=tmp_path / "state",
        with_alertmanager=False,
        environ={**os.environ, "OTELPERF_OTELCOL": str(broken)},
    )
    try:
        with pytest.raises(StackError) as caught:
            stack.up(timeout=30)
    finally:
        leftovers = stack.down()
    message = str(caught.value)
    assert message.startswith("OpenTelemetry Collector exited during startup; last lines of ")
    assert "error decoding config: boom" in message
    assert message.endswith("stopped what this `up` had started: collector, prometheus, jaeger")
    assert stack.state.recorded() == []
    assert leftovers == ["nothing was running"]  # up already stopped Jaeger and Prometheus
    assert [port for port in STACK_PORTS if port_in_use(port)] == []


def test_a_component_that_never_gets_healthy_times_out(tmp_path: Path, stack_ports_free: None) -> None:
    # No `exec`: the process must stay the one `up` recorded, so `up` can stop it.
    silent = _script(tmp_path / "otelcol-silent", "echo starting\nwhile :; do sleep 0.2; done\n")
    stack = Stack(
        state_dir=tmp_path / "state",
        with_alertmanager=False,
        environ={**os.environ, "OTELPERF_OTELCOL": str(silent)},
    )
    began = time.monotonic()
    try:
        with pytest.raises(StackError) as caught:
            stack.up(timeout=8)
    finally:
        stack.down()
    assert time.monotonic() - began < 25
    message = str(caught.value)
    assert message.startswith(
        "OpenTelemetry Collector not healthy within the 8 s timeout (http://127.0.0.1:13133/)"
    ), message
    assert "    starting" in message  # the tail of its log
    assert stack.state.recorded() == []
    assert [port for port in STACK_PORTS if port_in_use(port)] == []
