"""A loopback OTLP/HTTP sink that counts what the benchmark arms export.

    python benchmarks/otlp_sink.py [--port 0]      # prints "otlp-sink listening on http://127.0.0.1:PORT"

Accepts ``POST /v1/traces`` and ``POST /v1/metrics`` (protobuf, optionally gzip) and answers 200
with an empty Export*ServiceResponse, as a collector would. Spans are decoded, not just counted by
bytes, so that the benchmark can check that two arms exported *equivalent* spans: each span is
filed under its ``service.name`` and under the trace it belongs to, and a trace is labelled by its
root span (the SERVER span, "GET /json"), which gives spans per request per route.

``GET /counts`` returns everything as JSON (``?brief=1``: only span totals per service);
``POST /reset`` forgets everything.
Needs ``opentelemetry-proto`` (installed with the OTLP exporter), nothing else.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
import zlib
from collections import Counter
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
from opentelemetry.proto.trace.v1.trace_pb2 import Span

KIND_NAMES = {
    Span.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED",
    Span.SPAN_KIND_INTERNAL: "INTERNAL",
    Span.SPAN_KIND_SERVER: "SERVER",
    Span.SPAN_KIND_CLIENT: "CLIENT",
    Span.SPAN_KIND_PRODUCER: "PRODUCER",
    Span.SPAN_KIND_CONSUMER: "CONSUMER",
}
# Traces remembered per service before new ones are only counted, not grouped (keeps memory bounded).
MAX_TRACES_PER_SERVICE = 500_000
MAX_BODY_BYTES = 64 * 1024 * 1024
NO_ROOT = "(no root span received)"
FINDING_EVENT = "otelperf.finding"


def classify(span: Span, kind: str) -> str:
    """Sort a span into the categories the benchmark compares arms on."""
    keys = {kv.key for kv in span.attributes}
    if kind == "SERVER":
        return "server"
    if kind == "CLIENT" and keys & {"db.statement", "db.query.text"}:
        return "db"
    if kind == "CLIENT" and keys & {"db.system", "db.system.name"}:
        return "db-other"  # e.g. contrib's "connect" span: DB work, but no statement
    if keys & {"asgi.event.type"} or span.name.endswith((" http send", " http receive")):
        return "asgi-message"
    if any(k.startswith(("cache.", "otelperf.cache")) for k in keys):
        return "cache"
    return "other"


class _Service:
    """What one service.name exported."""

    def __init__(self) -> None:
        self.spans = 0
        self.server_spans = 0
        self.by_name_kind: Counter[tuple[str, str, str]] = Counter()
        # trace id -> [root name or None, Counter[(name, kind, category)]]
        self.traces: dict[bytes, list[Any]] = {}
        self.ungrouped_spans = 0
        self.metric_requests = 0
        self.metric_points = 0
        self.metric_names: set[str] = set()

    def add_span(self, span: Span, kind: str) -> None:
        category = classify(span, kind)
        key = (span.name, kind, category)
        self.spans += 1
        self.server_spans += kind == "SERVER"
        self.by_name_kind[key] += 1
        entry = self.traces.get(span.trace_id)
        if entry is None:
            if len(self.traces) >= MAX_TRACES_PER_SERVICE:
                self.ungrouped_spans += 1
                return
            entry = self.traces[span.trace_id] = [None, Counter(), False]
        entry[1][key] += 1
        if not span.parent_span_id:
            entry[0] = f"{span.name} [{kind}]"
        if not entry[2] and any(e.name == FINDING_EVENT for e in span.events):
            entry[2] = True  # production mode keeps a trace with a finding whatever its share

    def summary(self) -> dict[str, Any]:
        by_root: dict[str, dict[str, Any]] = {}
        for root, counter, has_finding in self.traces.values():
            label = root or NO_ROOT
            slot = by_root.setdefault(label, {"traces": 0, "with_findings": 0, "spans": Counter()})
            slot["traces"] += 1
            slot["with_findings"] += has_finding
            slot["spans"].update(counter)
        return {
            "spans": self.spans,
            "spans_by_name_kind": [
                {"name": n, "kind": k, "category": c, "count": v}
                for (n, k, c), v in sorted(self.by_name_kind.items())
            ],
            "traces": len(self.traces),
            "ungrouped_spans": self.ungrouped_spans,
            "by_root": {
                label: {
                    "traces": slot["traces"],
                    "with_findings": slot["with_findings"],
                    "spans": [
                        {"name": n, "kind": k, "category": c, "count": v}
                        for (n, k, c), v in sorted(slot["spans"].items())
                    ],
                }
                for label, slot in sorted(by_root.items())
            },
            "metric_requests": self.metric_requests,
            "metric_points": self.metric_points,
            "metric_names": sorted(self.metric_names),
        }


class Sink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.services: dict[str, _Service] = {}
        self.trace_requests = 0
        self.bad_requests = 0
        self.bytes_received = 0

    def reset(self) -> None:
        with self.lock:
            self.services.clear()
            self.trace_requests = self.bad_requests = self.bytes_received = 0

    def _service(self, resource: Any) -> _Service:
        name = "unknown"
        for kv in resource.attributes:
            if kv.key == "service.name":
                name = kv.value.string_value
        return self.services.setdefault(name, _Service())

    def add_traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        with self.lock:
            self.trace_requests += 1
            self.bytes_received += len(body)
            for rs in request.resource_spans:
                service = self._service(rs.resource)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        service.add_span(span, KIND_NAMES.get(span.kind, str(span.kind)))

    def add_metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        with self.lock:
            self.bytes_received += len(body)
            for rm in request.resource_metrics:
                service = self._service(rm.resource)
                service.metric_requests += 1
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        service.metric_names.add(metric.name)
                        data = metric.WhichOneof("data")
                        if data is not None:
                            service.metric_points += len(getattr(metric, data).data_points)

    def counts(self, brief: bool = False) -> dict[str, Any]:
        """Everything, or with ``brief`` only the totals (cheap enough to poll while waiting for a flush)."""
        with self.lock:
            services = {
                name: {"spans": s.spans, "server_spans": s.server_spans} if brief else s.summary()
                for name, s in sorted(self.services.items())
            }
            return {
                "trace_requests": self.trace_requests,
                "bad_requests": self.bad_requests,
                "bytes_received": self.bytes_received,
                "services": services,
            }


def make_handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a collector; the exporters reuse connections

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per export would drown the benchmark's own output

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise ValueError(f"body of {length} bytes is over the limit")
            raw = self.rfile.read(length) if length else b""
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            if encoding == "gzip":
                return gzip.decompress(raw)
            if encoding == "deflate":
                return zlib.decompress(raw)
            return raw

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/counts":
                body = json.dumps(sink.counts(brief="brief=1" in query)).encode()
                self._reply(200, body, "application/json")
            else:
                self._reply(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            path = self.path.split("?")[0]
            try:
                body = self._body()
                if path == "/v1/traces":
                    sink.add_traces(body)
                    self._reply(
                        200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf"
                    )
                elif path == "/v1/metrics":
                    sink.add_metrics(body)
                    self._reply(
                        200, ExportMetricsServiceResponse().SerializeToString(), "application/x-protobuf"
                    )
                elif path == "/reset":
                    sink.reset()
                    self._reply(200, b"{}", "application/json")
                else:
                    self._reply(404, b"not found", "text/plain")
            except Exception as exc:  # a malformed export is counted, and the sink keeps serving
                with sink.lock:
                    sink.bad_requests += 1
                self._reply(400, repr(exc).encode(), "text/plain")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 = an ephemeral port (printed)")
    args = parser.parse_args(argv)
    sink = Sink()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(sink))
    server.daemon_threads = True
    print(f"otlp-sink listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
