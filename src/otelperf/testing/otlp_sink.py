"""A loopback OTLP/HTTP receiver that keeps what it is sent: a test double for the collector.

    with OTLPSink() as sink:
        run_my_service(env={"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint})
        assert sink.wait_for_spans(lambda spans: len(spans) >= 3)

It decodes OTLP protobuf (optionally gzip-compressed) into plain records, bounded in number.

It can also play a collector in trouble, for delivery tests (``sink.fault = Fault("503", ...)``):
``refuse`` (the port closed, open connections cut), ``hang`` (reads the request, never answers),
``status`` (answers ``status`` with ``Retry-After``), ``reset`` (reads the request, then resets
the connection), ``slow`` (answers after ``delay`` seconds) and ``partial`` (accepts, and replies
that ``rejected`` spans were rejected). Only spans of requests answered 200 are counted.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import struct
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

__all__ = ["Fault", "OTLPSink", "SinkMetric", "SinkSpan"]

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


@dataclass(frozen=True)
class Fault:
    """How the sink misbehaves: mode 'hang', 'status', 'reset' or 'slow' ('refuse': see refuse())."""

    mode: str
    status: int = 503
    retry_after: str | None = None
    delay: float = 1.0
    rejected: int = 0  # mode 'partial': accept, and report this many spans rejected


class OTLPSink:
    """Receives OTLP/HTTP on 127.0.0.1 (an ephemeral port unless given)."""

    def __init__(
        self, port: int = 0, max_items: int = 500_000, keep_raw: bool = False, ids_only: bool = False
    ) -> None:
        self._port = port
        self._ids_only = ids_only  # keep span ids only (a set: duplicates visible as repeats)
        self.span_ids: set[bytes] = set()
        self.duplicate_spans = 0
        # Latest value of each otel.sdk.* / otelperf.export.* sum or gauge point, by attributes.
        self.sdk_metrics: dict[tuple[str, frozenset[tuple[str, Any]]], float] = {}
        self.fault: Fault | None = None
        self._conns: set[socket.socket] = set()
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
            protocol_version = "HTTP/1.1"  # keep-alive, as a collector does

            def setup(self) -> None:
                super().setup()
                with sink._lock:
                    sink._conns.add(self.connection)

            def finish(self) -> None:
                with sink._lock:
                    sink._conns.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if sink._misbehave(self):
                    return
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
                    answer = ExportTraceServiceResponse()
                    fault = sink.fault
                    if fault is not None and fault.mode == "partial":
                        answer.partial_success.rejected_spans = fault.rejected
                        answer.partial_success.error_message = "rejected by the test sink"
                    reply = answer.SerializeToString()
                elif self.path.startswith("/v1/metrics"):
                    sink._take_metrics(body)
                    reply = ExportMetricsServiceResponse().SerializeToString()
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", self._port), Handler)
        self._port = self._server.server_address[1]  # a restart listens on the same port
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def refuse(self) -> None:
        """Close the port and cut open connections, as a stopped collector would."""
        self.stop()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _misbehave(self, handler: BaseHTTPRequestHandler) -> bool:
        """Apply the current fault to a request; True when the request was not answered normally."""
        fault = self.fault
        if fault is None or fault.mode == "partial":
            return False
        if fault.mode == "slow":
            time.sleep(fault.delay)
            return False
        handler.close_connection = True
        if fault.mode == "status":
            handler.send_response(fault.status)
            if fault.retry_after is not None:
                handler.send_header("Retry-After", fault.retry_after)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif fault.mode == "hang":
            deadline = time.monotonic() + 60.0
            while self.fault is fault and time.monotonic() < deadline:
                time.sleep(0.05)
            _reset(handler.connection)
        elif fault.mode == "reset":
            _reset(handler.connection)
        return True

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
        if self._ids_only:
            ids = [s.span_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
            with self._lock:
                self.requests += 1
                before = len(self.span_ids)
                self.span_ids.update(ids)
                self.duplicate_spans += len(ids) - (len(self.span_ids) - before)
            return
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
                    if kind in ("sum", "gauge") and m.name.startswith(("otel.sdk.", "otelperf.export.")):
                        for p in getattr(m, kind).data_points:
                            key = frozenset((kv.key, _value(kv.value)) for kv in p.attributes)
                            value = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                            with self._lock:
                                self.sdk_metrics[(m.name, key)] = value
        with self._lock:
            self.requests += 1
            room = self._max - len(self.metrics)
            self.metrics.extend(decoded[: max(room, 0)])

    # --- reading ---
    def snapshot(self) -> list[SinkSpan]:
        with self._lock:
            return list(self.spans)

    def sdk_metric(self, name: str, **attributes: Any) -> float:
        """Sum of the latest points of ``name`` whose attributes include ``attributes``.

        ``error_type=None`` selects points without ``error.type`` (successes); ``error_type="*"``
        any point with one.
        """
        wanted = {k.replace("_", "."): v for k, v in attributes.items()}
        total = 0.0
        with self._lock:
            items = list(self.sdk_metrics.items())
        for (metric, attrs), value in items:
            if metric != name:
                continue
            have = dict(attrs)
            if all(
                (k not in have) if v is None else (k in have) if v == "*" else have.get(k) == v
                for k, v in wanted.items()
            ):
                total += value
        return total

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


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (or a reset we caused) is not news


def _reset(conn: socket.socket) -> None:
    """Close with RST instead of FIN: the client sees 'connection reset by peer'."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    except OSError:
        pass
