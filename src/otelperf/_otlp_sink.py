"""A loopback OTLP/HTTP receiver that keeps what it is sent: a test double for the collector.

    with OTLPSink() as sink:
        run_my_service(env={"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint})
        assert sink.wait_for_spans(lambda spans: len(spans) >= 3)

It decodes OTLP protobuf (optionally gzip-compressed) into plain records, bounded in number.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["OTLPSink", "SinkMetric", "SinkSpan"]

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which)


@dataclass(frozen=True)
class SinkSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status_code: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SinkMetric:
    name: str
    resource: dict[str, Any]
    points: int


class OTLPSink:
    """Receives OTLP/HTTP on 127.0.0.1 (an ephemeral port unless given)."""

    def __init__(self, port: int = 0, max_items: int = 500_000, keep_raw: bool = False) -> None:
        self._port = port
        self._keep_raw = keep_raw
        self.raw: list[bytes] = []  # every decoded request body, when keep_raw (to grep for leaks)
        self._max = max_items
        self._lock = threading.Lock()
        self.spans: list[SinkSpan] = []
        self.metrics: list[SinkMetric] = []
        self.requests = 0
        self.dropped = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---
    def start(self) -> OTLPSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if sink._keep_raw:
                    with sink._lock:
                        sink.raw.append(body)
                if self.path.startswith("/v1/traces"):
                    sink._take_traces(body)
                    reply = ExportTraceServiceResponse().SerializeToString()
                elif self.path.startswith("/v1/metrics"):
                    sink._take_metrics(body)
                    reply = ExportMetricsServiceResponse().SerializeToString()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OTLPSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the sink first"
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """Base URL for OTEL_EXPORTER_OTLP_ENDPOINT."""
        return f"http://127.0.0.1:{self.port}"

    # --- decoding ---
    def _take_traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        decoded: list[SinkSpan] = []
        for rs in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    decoded.append(
                        SinkSpan(
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            name=s.name,
                            kind=_KINDS.get(s.kind, str(s.kind)),
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            status_code=s.status.code,
                            attributes={kv.key: _value(kv.value) for kv in s.attributes},
                            resource=resource,
                            events=[e.name for e in s.events],
                        )
                    )
        with self._lock:
            self.requests += 1
            room = self._max - len(self.spans)
            self.spans.extend(decoded[: max(room, 0)])
            self.dropped += max(len(decoded) - max(room, 0), 0)

    def _take_metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        decoded: list[SinkMetric] = []
        for rm in request.resource_metrics:
            resource = {kv.key: _value(kv.value) for kv in rm.resource.attributes}
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    points = len(getattr(m, kind).data_points) if kind else 0
                    decoded.append(SinkMetric(m.name, resource, points))
        with self._lock:
            self.requests += 1
            room = self._max - len(self.metrics)
            self.metrics.extend(decoded[: max(room, 0)])

    # --- reading ---
    def snapshot(self) -> list[SinkSpan]:
        with self._lock:
            return list(self.spans)

    def reset(self) -> None:
        with self._lock:
            self.spans.clear()
            self.metrics.clear()
            self.raw.clear()
            self.requests = 0
            self.dropped = 0

    def wait_for_spans(self, done: Callable[[list[SinkSpan]], bool], timeout: float = 10.0) -> list[SinkSpan]:
        """Poll until ``done(spans)`` is true or the timeout passes; return the spans either way."""
        deadline = time.monotonic() + timeout
        spans = self.snapshot()
        while not done(spans) and time.monotonic() < deadline:
            time.sleep(0.05)
            spans = self.snapshot()
        return spans
