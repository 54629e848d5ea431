"""What the detectors cost per span, side by side in one run.

1. The app's thread: ``span.end()`` of a 12-span request (1 SERVER + 11 DB spans) with the
   exporting processor alone vs with the detector pipeline in front of it.
2. The detector thread: ``analyze()`` per detector on the same requests, and all of them.

    .venv/bin/python benchmarks/detectors_micro.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otelperf.config import resolve_settings
from otelperf.detectors._api import TraceView
from otelperf.detectors._findings import FindingsSink
from otelperf.detectors._registry import build_detectors
from otelperf.pipeline.detector_processor import DetectorSpanProcessor

DB_ATTRIBUTES = {
    "db.system.name": "postgresql",
    "db.query.text": "SELECT books.title FROM books WHERE books.author_id = $1",
    "db.operation.name": "SELECT",
    "db.collection.name": "books",
    "otelperf.component": "db",
}


class _DropAll(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        pass


class _Null(SpanExporter):
    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _request(tracer: object) -> None:
    with tracer.start_as_current_span(  # type: ignore[attr-defined]
        "GET /authors", kind=SpanKind.SERVER, attributes={"http.route": "/authors"}
    ):
        for _ in range(11):
            tracer.start_span("SELECT books", kind=SpanKind.CLIENT, attributes=DB_ATTRIBUTES).end()  # type: ignore[attr-defined]


def _time_per_request(run: Callable[[], None], requests: int, repeats: int = 5) -> float:
    """CPU time of the calling thread (the detector thread's work is not counted here)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for _ in range(requests):
            run()
        best = min(best, (time.thread_time() - start) / requests)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    settings = resolve_settings(environ={}, budgets={"*": "500ms"})
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench")

    plain = TracerProvider()
    plain.add_span_processor(SimpleSpanProcessor(_Null()))
    piped = TracerProvider()
    pipeline = DetectorSpanProcessor(
        SimpleSpanProcessor(_Null()), build_detectors(settings, meter), FindingsSink(meter)
    )
    piped.add_span_processor(pipeline)
    t_plain, t_piped = plain.get_tracer("b"), piped.get_tracer("b")
    for tracer in (t_plain, t_piped):  # warm up
        for _ in range(200):
            _request(tracer)
    pipeline.force_flush()
    without = _time_per_request(lambda: _request(t_plain), args.requests)
    with_pipeline = _time_per_request(lambda: _request(t_piped), args.requests)
    pipeline.force_flush()

    print(f"app thread CPU, 12-span request ({args.requests} requests, best of 5)")
    print(f"  exporting processor alone     {without:8.1f} us/request")
    print(f"  with the detector pipeline    {with_pipeline:8.1f} us/request")
    added = (with_pipeline - without) / 12
    print(f"  added per span                {added:8.2f} us   ratio {with_pipeline / without:.2f}")

    # The pipeline's own on_end, alone: what the app's thread pays per ended span (the hand-over
    # to the exporting processor then happens on the detector thread).
    exporter = InMemorySpanExporter()
    source = TracerProvider()
    source.add_span_processor(SimpleSpanProcessor(exporter))
    batch = []
    for _ in range(300):
        _request(source.get_tracer("b"))
        batch.append(list(exporter.get_finished_spans()))
        exporter.clear()
    filing_only = DetectorSpanProcessor(_DropAll(), [], FindingsSink(None))

    def end_all(processor: object) -> None:
        for request in batch:
            for span in request:
                processor.on_end(span)  # type: ignore[attr-defined]

    per_span = _time_per_request(lambda: end_all(filing_only), 1) / (len(batch) * 12)
    baseline = _time_per_request(lambda: end_all(_DropAll()), 1) / (len(batch) * 12)
    filing_only.shutdown()
    print(f"  pipeline on_end alone         {per_span:8.2f} us/span (a no-op processor: {baseline:.2f})")

    exporter = InMemorySpanExporter()
    source = TracerProvider()
    source.add_span_processor(SimpleSpanProcessor(exporter))
    views: list[TraceView] = []
    for _ in range(500):
        _request(source.get_tracer("b"))
        spans: list[ReadableSpan] = list(exporter.get_finished_spans())
        exporter.clear()
        root = next(s for s in spans if s.parent is None)
        views.append(TraceView(root, spans))

    print("detector thread, analyze() per 12-span request")
    total = 0.0
    for detector in build_detectors(settings, meter):
        for view in views[:50]:
            detector.analyze(view)

        def run(d: object = detector) -> None:
            for view in views:
                d.analyze(view)  # type: ignore[attr-defined]

        us = _time_per_request(run, 1, repeats=5) / len(views)
        total += us
        print(f"  {detector.name:<16} {us:8.1f} us/request  {us / 12:6.2f} us/span")
    print(f"  {'all':<16} {total:8.1f} us/request  {total / 12:6.2f} us/span")


if __name__ == "__main__":
    main()
