"""CLIENT spans for requests, against a real HTTP server on 127.0.0.1 that echoes what it received."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, StatusCode

from otelperf.testing import Capture


class _EchoHandler(BaseHTTPRequestHandler):
    """GET /status/<code> answers <code>; /redirect answers 302 to /echo; anything else echoes."""

    def do_GET(self) -> None:
        if self.path.startswith("/status/"):
            code = int(self.path.rsplit("/", 1)[1])
            self._answer(code, {})
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/echo")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._answer(200, {"path": self.path, "traceparent": self.headers.get("traceparent")})

    def _answer(self, code: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _traceparent_of(span: object) -> str:
    ctx = span.context  # type: ignore[attr-defined]
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def test_get_makes_one_client_span_and_propagates(otelperf_capture: Capture, server: str) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with tracer.start_as_current_span("parent") as parent:
        response = requests.get(f"{server}/echo?page=2", timeout=5)
    [span] = otelperf_capture.spans_named("GET")
    assert span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert response.json()["traceparent"] == _traceparent_of(span)
    port = int(server.rsplit(":", 1)[1])
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": port,
        "url.scheme": "http",
        "url.full": f"{server}/echo?page=2",
        "otelperf.component": "http",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_credentials_and_tokens_are_redacted(otelperf_capture: Capture, server: str) -> None:
    url = server.replace("http://", "http://alice:s3cret@") + "/echo?token=abc&x=1"
    response = requests.get(url, timeout=5)
    assert response.json()["path"] == "/echo?token=abc&x=1"  # the request itself is untouched
    [span] = otelperf_capture.spans_named("GET")
    full = (span.attributes or {})["url.full"]
    assert full == server.replace("http://", "http://REDACTED:REDACTED@") + "/echo?token=REDACTED&x=1"


def test_5xx_is_an_error_4xx_is_not(otelperf_capture: Capture, server: str) -> None:
    with requests.Session() as session:
        session.get(f"{server}/status/503", timeout=5)
        session.get(f"{server}/status/404", timeout=5)
    by_status = {(s.attributes or {})["http.response.status_code"]: s for s in otelperf_capture.spans}
    assert by_status[503].status.status_code is StatusCode.ERROR
    assert (by_status[503].attributes or {})["error.type"] == "503"
    assert by_status[404].status.status_code is StatusCode.UNSET
    assert "error.type" not in (by_status[404].attributes or {})


def test_connect_error_propagates_unchanged(otelperf_capture: Capture, closed_port: int) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{closed_port}/x", timeout=5)
    [span] = otelperf_capture.spans_named("GET")
    assert span.status.status_code is StatusCode.ERROR
    attrs = span.attributes or {}
    assert attrs["error.type"] == "ConnectionError"
    assert "http.response.status_code" not in attrs
    [point] = otelperf_capture.metric_points("http.client.request.duration")
    assert point.attributes["error.type"] == "ConnectionError"


def test_redirect_hops_share_one_span(otelperf_capture: Capture, server: str) -> None:
    response = requests.get(f"{server}/redirect", timeout=5)
    assert response.status_code == 200
    assert len(response.history) == 1
    [span] = otelperf_capture.spans
    assert (span.attributes or {})["http.response.status_code"] == 200
    assert response.json()["traceparent"] == _traceparent_of(span)


def test_duration_metric(otelperf_capture: Capture, server: str) -> None:
    with requests.Session() as session:
        session.get(f"{server}/echo", timeout=5)
        session.get(f"{server}/echo", timeout=5)
    [point] = otelperf_capture.metric_points("http.client.request.duration")
    assert point.count == 2
    assert dict(point.attributes) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": int(server.rsplit(":", 1)[1]),
        "url.scheme": "http",
        "http.response.status_code": 200,
    }


def test_suppressed_http_makes_no_span_and_injects_nothing(otelperf_capture: Capture, server: str) -> None:
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        response = requests.get(f"{server}/echo", timeout=5)
    finally:
        otel_context.detach(token)
    assert response.json()["traceparent"] is None
    assert otelperf_capture.spans == []


def test_uninstrument_restores_send(server: str) -> None:
    from otelperf.testing import capture, stop_capture

    original = vars(requests.Session)["send"]
    cap = capture()
    assert vars(requests.Session)["send"] is not original
    stop_capture(cap)
    assert vars(requests.Session)["send"] is original
    assert requests.get(f"{server}/echo", timeout=5).json()["traceparent"] is None
