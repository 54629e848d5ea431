"""FastOTLPSpanExporter against a real OTLP/HTTP receiver on loopback (http.server in a thread)."""

from __future__ import annotations

import gzip
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otelperf.export.otlp_http import ExportFailed, FastOTLPSpanExporter


@dataclass
class _Received:
    headers: dict[str, str]
    raw: bytes
    message: ExportTraceServiceRequest

    @property
    def span_names(self) -> list[str]:
        return [s.name for rs in self.message.resource_spans for ss in rs.scope_spans for s in ss.spans]


@dataclass
class _Receiver:
    """What the server received, and the replies it gives next (200 with an empty body when none)."""

    url: str = ""
    replies: deque[tuple[int, dict[str, str], bytes]] = field(default_factory=deque)
    received: list[_Received] = field(default_factory=list)
    got_request: threading.Event = field(default_factory=threading.Event)

    def reply(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.replies.append((status, headers or {}, body))


def _handler(receiver: _Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a collector does

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
            message = ExportTraceServiceRequest()
            message.ParseFromString(body)
            receiver.received.append(_Received(dict(self.headers.items()), raw, message))
            status, headers, reply = receiver.replies.popleft() if receiver.replies else (200, {}, b"")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            receiver.got_request.set()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    state = _Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


Spans = tuple[ReadableSpan, ...]


@pytest.fixture(scope="module")
def spans() -> Spans:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span(
            "GET /orders/{id}", kind=SpanKind.SERVER, attributes={"http.route": "/orders/{id}"}
        ),
        tracer.start_as_current_span(
            "SELECT shop", kind=SpanKind.CLIENT, attributes={"db.system.name": "postgresql"}
        ),
    ):
        pass
    provider.shutdown()
    return memory.get_finished_spans()


@pytest.fixture
def exporters() -> Iterator[list[FastOTLPSpanExporter]]:
    made: list[FastOTLPSpanExporter] = []
    yield made
    for exporter in made:
        exporter.shutdown()


MakeExporter = Callable[..., FastOTLPSpanExporter]


@pytest.fixture
def make_exporter(exporters: list[FastOTLPSpanExporter]) -> MakeExporter:
    def make(endpoint: str, **kwargs: Any) -> FastOTLPSpanExporter:
        exporter = FastOTLPSpanExporter(endpoint, **kwargs)
        exporters.append(exporter)
        return exporter

    return make


def _short_backoff(monkeypatch: pytest.MonkeyPatch, factor: float = 0.01) -> None:
    """Backoff is 2**attempt * random.uniform(0.8, 1.2) seconds; make it 2**attempt * factor."""
    monkeypatch.setattr(random, "uniform", lambda a, b: factor)


def test_success_posts_protobuf_the_receiver_decodes(
    receiver: _Receiver, spans: Spans, make_exporter: MakeExporter
) -> None:
    exporter = make_exporter(receiver.url, headers={"x-api-key": "secret"})
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    (request,) = receiver.received
    assert request.headers["Content-Type"] == "application/x-protobuf"
    assert request.headers["x-api-key"] == "secret"
    assert "Content-Encoding" not in request.headers
    assert request.span_names == ["SELECT shop", "GET /orders/{id}"]
    assert exporter.rejected_spans == 0


def test_gzip(receiver: _Receiver, spans: Spans, make_exporter: MakeExporter) -> None:
    exporter = make_exporter(receiver.url, compression="gzip")
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    (request,) = receiver.received
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.raw[:2] == b"\x1f\x8b"  # the gzip magic: the body really is compressed
    assert request.span_names == ["SELECT shop", "GET /orders/{id}"]


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_status_is_retried_until_success(
    receiver: _Receiver,
    spans: Spans,
    make_exporter: MakeExporter,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
) -> None:
    _short_backoff(monkeypatch)
    receiver.reply(status)
    receiver.reply(status)
    exporter = make_exporter(receiver.url, timeout=5)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert len(receiver.received) == 3
    assert all(r.span_names == ["SELECT shop", "GET /orders/{id}"] for r in receiver.received)


def test_client_error_is_not_retried(
    receiver: _Receiver, spans: Spans, make_exporter: MakeExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    _short_backoff(monkeypatch)
    receiver.reply(400, body=b"bad request")
    exporter = make_exporter(receiver.url, timeout=5)
    with pytest.raises(ExportFailed, match="HTTP 400"):
        exporter.export(spans)
    assert len(receiver.received) == 1


def test_retry_after_is_honoured(
    receiver: _Receiver, spans: Spans, make_exporter: MakeExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without Retry-After the backoff would be 5 s, past the 3 s deadline: only honouring it succeeds.
    _short_backoff(monkeypatch, factor=5.0)
    receiver.reply(503, {"Retry-After": "0.4"})
    exporter = make_exporter(receiver.url, timeout=3)
    started = time.monotonic()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    elapsed = time.monotonic() - started
    assert len(receiver.received) == 2
    assert 0.4 <= elapsed < 2.0


def test_retry_after_past_the_deadline_fails_at_once(
    receiver: _Receiver, spans: Spans, make_exporter: MakeExporter
) -> None:
    receiver.reply(503, {"Retry-After": "30"})
    exporter = make_exporter(receiver.url, timeout=3)
    started = time.monotonic()
    with pytest.raises(ExportFailed, match="HTTP 503"):
        exporter.export(spans)
    assert time.monotonic() - started < 1.0
    assert len(receiver.received) == 1


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/traces"  # nothing listens there any more


def test_connection_refused_fails_within_the_timeout(spans: Spans, make_exporter: MakeExporter) -> None:
    exporter = make_exporter(_refused_url(), timeout=1.5)
    started = time.monotonic()
    with pytest.raises(ExportFailed) as failure:
        exporter.export(spans)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 0.5
    reason = str(failure.value)
    assert reason.startswith("ConnectionError")
    assert "refused" in reason.lower()


def test_shutdown_during_backoff_makes_export_return_promptly(
    receiver: _Receiver, spans: Spans, make_exporter: MakeExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    _short_backoff(monkeypatch, factor=10.0)  # a 10 s backoff after the first 503, deadline 30 s
    for _ in range(3):
        receiver.reply(503)
    exporter = make_exporter(receiver.url, timeout=30)
    outcome: list[BaseException | SpanExportResult] = []

    def run() -> None:
        try:
            outcome.append(exporter.export(spans))
        except ExportFailed as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert receiver.got_request.wait(5)
    time.sleep(0.1)  # into the backoff
    started = time.monotonic()
    exporter.shutdown()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 1.0
    (result,) = outcome
    assert isinstance(result, ExportFailed)
    assert str(result) == "HTTP 503"
    assert len(receiver.received) == 1
    # After shutdown nothing is sent.
    assert exporter.export(spans) is SpanExportResult.FAILURE
    assert len(receiver.received) == 1


def test_partial_success_rejected_spans_are_counted(
    receiver: _Receiver, spans: Spans, make_exporter: MakeExporter
) -> None:
    partial = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=3, error_message="span too large")
    ).SerializeToString()
    receiver.reply(200, body=partial)
    receiver.reply(200, body=partial)
    exporter = make_exporter(receiver.url)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # an empty reply rejects nothing
    assert exporter.rejected_spans == 6


def test_proxy_from_environment_is_ignored(
    receiver: _Receiver, spans: Spans, make_exporter: MakeExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = _refused_url().rsplit("/v1", 1)[0]
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    # The environment is in effect: a plain requests call goes to the dead proxy and fails.
    with pytest.raises(requests.ConnectionError):
        requests.post(receiver.url, data=b"", timeout=2)
    assert receiver.received == []
    exporter = make_exporter(receiver.url, timeout=3)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert len(receiver.received) == 1
