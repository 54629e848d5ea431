"""CLIENT spans for httpx, against a real HTTP server on 127.0.0.1 that echoes what it received."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
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


def test_sync_get_makes_one_client_span_and_propagates(otelperf_capture: Capture, server: str) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with tracer.start_as_current_span("parent") as parent, httpx.Client() as client:
        response = client.get(f"{server}/echo?page=2")
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


async def test_async_client_span_covers_the_call(otelperf_capture: Capture, server: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{server}/echo")
    assert response.status_code == 501  # http.server has no do_POST: a real answer all the same
    [span] = otelperf_capture.spans_named("POST")
    attrs = span.attributes or {}
    assert attrs["http.response.status_code"] == 501
    assert attrs["error.type"] == "501"
    assert span.status.status_code is StatusCode.ERROR
    assert span.end_time is not None and span.start_time is not None


async def test_async_propagates_its_own_span(otelperf_capture: Capture, server: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{server}/echo")
    [span] = otelperf_capture.spans_named("GET")
    assert response.json()["traceparent"] == _traceparent_of(span)


def test_credentials_and_tokens_are_redacted(otelperf_capture: Capture, server: str) -> None:
    url = server.replace("http://", "http://alice:s3cret@") + "/echo?token=abc&x=1"
    with httpx.Client() as client:
        response = client.get(url)
    assert response.json()["path"] == "/echo?token=abc&x=1"  # the request itself is untouched
    [span] = otelperf_capture.spans_named("GET")
    full = (span.attributes or {})["url.full"]
    assert full == server.replace("http://", "http://REDACTED:REDACTED@") + "/echo?token=REDACTED&x=1"


def test_5xx_is_an_error_4xx_is_not(otelperf_capture: Capture, server: str) -> None:
    with httpx.Client() as client:
        client.get(f"{server}/status/503")
        client.get(f"{server}/status/404")
    by_status = {(s.attributes or {})["http.response.status_code"]: s for s in otelperf_capture.spans}
    assert by_status[503].status.status_code is StatusCode.ERROR
    assert (by_status[503].attributes or {})["error.type"] == "503"
    assert by_status[404].status.status_code is StatusCode.UNSET
    assert "error.type" not in (by_status[404].attributes or {})


def test_connect_error_propagates_unchanged(otelperf_capture: Capture, closed_port: int) -> None:
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{closed_port}/x")
    [span] = otelperf_capture.spans_named("GET")
    assert span.status.status_code is StatusCode.ERROR
    attrs = span.attributes or {}
    assert attrs["error.type"] == "ConnectError"
    assert "http.response.status_code" not in attrs
    [point] = otelperf_capture.metric_points("http.client.request.duration")
    assert point.attributes["error.type"] == "ConnectError"


def test_redirects_followed_by_httpx_share_one_span(otelperf_capture: Capture, server: str) -> None:
    with httpx.Client(follow_redirects=True) as client:
        response = client.get(f"{server}/redirect")
    assert response.status_code == 200
    [span] = otelperf_capture.spans
    assert (span.attributes or {})["http.response.status_code"] == 200


def test_duration_metric(otelperf_capture: Capture, server: str) -> None:
    with httpx.Client() as client:
        client.get(f"{server}/echo")
        client.get(f"{server}/echo")
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
        with httpx.Client() as client:
            response = client.get(f"{server}/echo")
    finally:
        otel_context.detach(token)
    assert response.json()["traceparent"] is None
    assert otelperf_capture.spans == []


def test_uninstrument_restores_send(server: str) -> None:
    from otelperf.testing import capture, stop_capture

    original = (vars(httpx.Client)["send"], vars(httpx.AsyncClient)["send"])
    cap = capture()
    assert vars(httpx.Client)["send"] is not original[0]
    stop_capture(cap)
    assert (vars(httpx.Client)["send"], vars(httpx.AsyncClient)["send"]) == original
    with httpx.Client() as client:
        assert client.get(f"{server}/echo").json()["traceparent"] is None
