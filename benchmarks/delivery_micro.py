"""Cost per span of exporting: the SDK's BatchSpanProcessor vs otelperf's OTLPBatchProcessor.

    .venv/bin/python benchmarks/delivery_micro.py [--spans 20000] [--rounds 5]

Two figures, side by side in one run, medians over interleaved rounds:

- **on_end (app thread)**: wall time of ``processor.on_end(span)`` per span, the only part of
  export that runs on the application's thread. Spans are real ReadableSpans made once (a SERVER
  span with HTTP attributes, a database CLIENT span, a cache span); they are fed in chunks of 256
  with a pause between chunks so the worker threads drain the queue and nothing is dropped.
- **pipeline CPU**: process CPU time (every thread) per span to take the same spans through the
  processor, encode them with otelperf's encoder (both arms) and hand the bytes to a transport
  that discards them, until flushed. This charges the worker and sender threads too.

Both arms export to a no-op sink, so the network is not measured; a real collector adds the same
request cost to both, minus what coalescing saves otelperf after a backlog.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otelperf.export.encode import encode_spans
from otelperf.export.processor import OTLPBatchProcessor
from otelperf.export.transport import SendResult

CHUNK = 256


class EncodingNullExporter(SpanExporter):
    """What the SDK arm's exporter does per batch with otelperf's encoder, minus the network."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans)
        return SpanExportResult.SUCCESS


class NullTransport:
    endpoint = "null://"
    component_type = "otlp_http_span_exporter"

    def send(self, data: bytes, timeout: float) -> SendResult:
        return SendResult(True)

    def close(self) -> None:
        pass


def make_spans(count: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for i in range(count // 3 + 1):
        with tracer.start_as_current_span("GET /orders/{id}", kind=SpanKind.SERVER) as root:
            root.set_attribute("http.route", "/orders/{id}")
            root.set_attribute("http.request.method", "GET")
            root.set_attribute("http.response.status_code", 200)
            with tracer.start_as_current_span("SELECT shop.orders", kind=SpanKind.CLIENT) as db:
                db.set_attribute("db.system.name", "postgresql")
                db.set_attribute("db.query.text", "SELECT id, total FROM orders WHERE id = $1")
                db.set_attribute("db.namespace", "shop")
            with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT) as cache:
                cache.set_attribute("db.system.name", "redis")
                cache.set_attribute("otelperf.cache.hit", i % 2 == 0)
    return list(memory.get_finished_spans())[:count]


def sdk_processor() -> SpanProcessor:
    processor: SpanProcessor = BatchSpanProcessor(
        EncodingNullExporter(), max_queue_size=8192, schedule_delay_millis=1000
    )
    return processor


def otelperf_processor() -> SpanProcessor:
    processor: SpanProcessor = OTLPBatchProcessor(NullTransport(), max_queue_size=8192, schedule_delay=1.0)
    return processor


def measure(make: type | object, spans: list[ReadableSpan]) -> tuple[float, float]:
    """(on_end ns/span, pipeline CPU µs/span) for one fresh processor."""
    processor = make()  # type: ignore[operator]
    on_end = processor.on_end
    app_time = 0.0
    cpu_before = time.process_time()
    for start in range(0, len(spans), CHUNK):
        chunk = spans[start : start + CHUNK]
        began = time.perf_counter()
        for span in chunk:
            on_end(span)
        app_time += time.perf_counter() - began
        time.sleep(0.002)  # let the worker drain: no drops in either arm
    processor.force_flush(30_000)
    cpu = time.process_time() - cpu_before
    processor.shutdown()
    return app_time / len(spans) * 1e9, cpu / len(spans) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    spans = make_spans(args.spans)
    arms = {"sdk BatchSpanProcessor": sdk_processor, "otelperf OTLPBatchProcessor": otelperf_processor}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
    for round_ in range(args.rounds):
        order = list(arms.items()) if round_ % 2 == 0 else list(reversed(arms.items()))
        for name, make in order:
            results[name].append(measure(make, spans))
    print(f"{len(spans)} spans x {args.rounds} rounds (medians)\n")
    print(f"{'arm':<30} {'on_end ns/span':>16} {'pipeline CPU us/span':>22}")
    medians = {}
    for name, rows in results.items():
        on_end = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        medians[name] = (on_end, cpu)
        print(f"{name:<30} {on_end:>16.0f} {cpu:>22.2f}")
    sdk, ours = medians["sdk BatchSpanProcessor"], medians["otelperf OTLPBatchProcessor"]
    print(f"\notelperf / sdk: on_end {ours[0] / sdk[0]:.2f}x, pipeline CPU {ours[1] / sdk[1]:.2f}x")


if __name__ == "__main__":
    main()
