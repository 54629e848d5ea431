"""Load for the delivery tests: spans of known trace ids sent over OTLP/HTTP, every export retried
until the collector accepts it (2xx), so whatever the collector accepted is known exactly.

This is the app side kept out of the question: the OpenTelemetry SDK (BatchSpanProcessor with a
queue large enough for the whole run, the OTLP/HTTP exporter) behind a wrapper that retries a
failed export instead of dropping it, e.g. while the collector restarts. otelperf's own retry
buffer is tested elsewhere; here only the backend may lose spans.

    python -m tests.e2e._delivery_producer --service delivery-x --rate 800 --duration 20 --out DIR

writes, in DIR:
    accepted.txt    one line per accepted export and trace in it: ``<trace id hex> <spans>``
                    (appended as exports succeed, so a test can follow the run)
    summary.json    produced traces/spans, accepted spans, failed attempts, spans given up on
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

RETRY_PAUSE_S = 0.25


class RetryingExporter(SpanExporter):
    """Retries a failed export until it succeeds or ``give_up_at`` (monotonic) has passed; records
    every accepted span's trace id."""

    def __init__(self, inner: SpanExporter, accepted: Path, give_up_at: float) -> None:
        self.inner = inner
        self.give_up_at = give_up_at
        self.accepted_spans = 0
        self.failed_attempts = 0
        self.given_up_spans = 0
        self._out = accepted.open("a", encoding="ascii")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        while True:
            if self.inner.export(spans) is SpanExportResult.SUCCESS:
                self._record(spans)
                return SpanExportResult.SUCCESS
            self.failed_attempts += 1
            if time.monotonic() >= self.give_up_at:
                self.given_up_spans += len(spans)
                return SpanExportResult.FAILURE
            time.sleep(RETRY_PAUSE_S)

    def _record(self, spans: Sequence[ReadableSpan]) -> None:
        per_trace = Counter(f"{span.context.trace_id:032x}" for span in spans if span.context)
        with self._lock:
            self.accepted_spans += len(spans)
            self._out.write("".join(f"{tid} {n}\n" for tid, n in per_trace.items()))
            self._out.flush()

    def shutdown(self) -> None:
        self.inner.shutdown()
        self._out.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def produce(
    service: str, *, rate: float, spans_per_trace: int, duration: float, out: Path, endpoint: str
) -> dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    exporter = RetryingExporter(
        OTLPSpanExporter(endpoint=endpoint, timeout=2), out / "accepted.txt", began + duration + 60.0
    )
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    # A queue for the whole run: nothing is dropped app-side while the collector is away.
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter, max_queue_size=200_000, schedule_delay_millis=200, max_export_batch_size=512
        )
    )
    tracer = provider.get_tracer("otelperf.tests.delivery")
    traces = 0
    next_note = began + 5.0
    while (now := time.monotonic()) - began < duration:
        due = int((now - began) * rate / spans_per_trace)
        for _ in range(due - traces):
            # Attributes shaped like a real request's, so the queue's bytes per span are realistic.
            with tracer.start_as_current_span(
                "GET /orders/{order_id}",
                attributes={
                    "http.request.method": "GET",
                    "http.route": "/orders/{order_id}",
                    "url.path": f"/orders/{traces}",
                    "http.response.status_code": 200,
                    "delivery.seq": traces,
                },
            ):
                for child in range(spans_per_trace - 1):
                    with tracer.start_as_current_span(
                        "SELECT shop.orders",
                        attributes={
                            "db.system.name": "postgresql",
                            "db.operation.name": "SELECT",
                            "db.query.text": "SELECT id, customer_id, total FROM orders WHERE id = $1",
                            "delivery.child": child,
                        },
                    ):
                        pass
            traces += 1
        if now >= next_note:
            print(
                f"producer: {traces * spans_per_trace} spans made, {exporter.accepted_spans} accepted",
                flush=True,
            )
            next_note = now + 5.0
        time.sleep(0.01)
    produced_s = time.monotonic() - began
    provider.force_flush(timeout_millis=70_000)
    provider.shutdown()
    summary = {
        "produced_traces": traces,
        "produced_spans": traces * spans_per_trace,
        "accepted_spans": exporter.accepted_spans,
        "failed_attempts": exporter.failed_attempts,
        "given_up_spans": exporter.given_up_spans,
        "producing_seconds": round(produced_s, 2),
        "total_seconds": round(time.monotonic() - began, 2),
    }
    (out / "summary.json").write_text(json.dumps(summary))
    print(f"producer: done {summary}", flush=True)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", required=True)
    parser.add_argument("--rate", type=float, default=800.0, help="spans per second")
    parser.add_argument("--spans-per-trace", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of producing")
    parser.add_argument("--endpoint", default="http://127.0.0.1:4318/v1/traces")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    produce(
        args.service,
        rate=args.rate,
        spans_per_trace=args.spans_per_trace,
        duration=args.duration,
        out=args.out,
        endpoint=args.endpoint,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
