"""``otelperf doctor``: a test batch through the real exporter, and per-service figures from Prometheus."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from otelperf.cli import doctor
from otelperf.export import figures
from otelperf.testing.otlp_sink import Fault, OTLPSink


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[OTLPSink]:
    with OTLPSink() as s:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", s.endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "doctor-test")
        yield s


@pytest.fixture
def prometheus(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A loopback stand-in for Prometheus' query API with the series a shop would have exported."""
    queries: list[str] = []
    series = {
        "otel_sdk_exporter_span_exported": [
            ({"service_name": "shop"}, "1200"),
            ({"service_name": "shop", "error_type": "buffer_full"}, "512"),
            ({"service_name": "inventory"}, "80"),
        ],
        "otel_sdk_processor_span_processed": [({"service_name": "shop", "error_type": "queue_full"}, "3")],
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["query"][0]
            queries.append(query)
            name = next(n for n in series if n in query)
            result = [{"metric": m, "value": [0, v]} for m, v in series[name]]
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(figures, "PROMETHEUS_URL", f"http://127.0.0.1:{server.server_address[1]}")
    yield queries
    server.shutdown()
    server.server_close()


def test_doctor_sends_a_test_batch_and_shows_its_accounting(
    sink: OTLPSink, prometheus: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert doctor.run_doctor(timeout=3.0) == 0
    out = capsys.readouterr().out
    assert "span delivery (a test batch through otelperf's exporter): ok" in out
    assert "delivered 10 of 10 test spans" in out
    received = [s for s in sink.snapshot() if s.name == "otelperf doctor test span"]
    assert len(received) == 10 and received[0].resource["service.name"] == "doctor-test"
    # Per-service figures from the otel.sdk.* metrics in Prometheus.
    assert (
        "shop" in out and "delivered 1200" in out and "dropped 515 (buffer_full: 512, queue_full: 3)" in out
    )
    assert "inventory" in out and "delivered 80" in out
    assert any("otel_sdk_exporter_span_exported" in q and "service_name" in q for q in prometheus)


def test_doctor_fails_when_the_collector_rejects_the_spans(
    sink: OTLPSink, prometheus: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    sink.fault = Fault("partial", rejected=10)  # answers 200, yet keeps none of the spans
    assert doctor.run_doctor(timeout=3.0) == 1
    out = capsys.readouterr().out
    assert "span delivery (a test batch through otelperf's exporter): FAILED" in out
    assert "delivered 0 of 10 test spans (dropped: rejected: 10)" in out


def test_doctor_json_carries_the_figures(
    sink: OTLPSink, prometheus: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert doctor.run_doctor(timeout=3.0, as_json=True) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["delivery"]["stats"]["spans_exported"] == 10
    assert report["prometheus_delivery"]["services"]["shop"] == {
        "delivered": 1200,
        "dropped": {"buffer_full": 512, "queue_full": 3},
    }


def test_prometheus_not_answering_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(figures, "PROMETHEUS_URL", f"http://127.0.0.1:{port}")
    report = doctor.prometheus_delivery(timeout=1.0)
    assert report["services"] == {} and report["error"].startswith("not available")


def test_the_doctor_command_line(
    sink: OTLPSink, prometheus: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from otelperf.cli import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("otelperf ") and "\nsettings (value  <- where it came from):\n" in out
    assert f"  {sink.endpoint}/v1/traces: ok: accepted an empty OTLP export (HTTP 200)" in out
    assert main(["doctor", "--json", "--timeout", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["endpoint"]["ok"] is True


@pytest.mark.fast_paths
@pytest.mark.parametrize(
    ("env", "on", "why"),
    [
        ({}, True, "equivalent for this provider"),
        ({"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10"}, False, "SpanLimits"),
        ({"OTELPERF_SDK_FAST_PATHS": "false"}, False, "forced off"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, False, "sampler"),
    ],
)
def test_doctor_says_which_fast_paths_are_on_and_why(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    on: bool,
    why: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: no batch
    doctor.run_doctor(timeout=0.2)
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if "leaf and request spans built directly" in line]
    assert (" on " in line) is on and why in line, line
