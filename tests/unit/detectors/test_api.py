"""TraceView's component index agrees with component_of() for every kind of span."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from otelperf.detectors._api import TraceView, component_of

_ROOT = SpanContext(0xABC, 1, False, TraceFlags(1))


def _plain(span_id: int, kind: SpanKind, attributes: Any) -> ReadableSpan:
    context = SpanContext(_ROOT.trace_id, span_id, False, TraceFlags(1))
    return ReadableSpan(
        "s", context=context, parent=_ROOT, kind=kind, attributes=attributes, start_time=1, end_time=2
    )


def test_the_index_puts_each_span_where_component_of_says_plain_and_sdk_spans_alike() -> None:
    cases: list[tuple[SpanKind, dict[str, Any], str]] = [
        (SpanKind.CLIENT, {"otelperf.component": "db"}, "db"),
        (SpanKind.INTERNAL, {"otelperf.component": "cache"}, "cache"),
        (SpanKind.CLIENT, {"otelperf.component": "http"}, "http"),
        (SpanKind.INTERNAL, {"otelperf.component": ["db"]}, "app"),  # not a name: no crash, app
        (SpanKind.INTERNAL, {"otelperf.component": "other"}, "app"),
        (SpanKind.INTERNAL, {"otelperf.cache.name": "c"}, "cache"),
        (SpanKind.CLIENT, {"db.system.name": "redis"}, "cache"),
        (SpanKind.CLIENT, {"db.system.name": "postgresql"}, "db"),
        (SpanKind.CLIENT, {"http.request.method": "GET"}, "http"),
        (SpanKind.SERVER, {"http.request.method": "GET"}, "app"),
        (SpanKind.SERVER, {"db.system.name": "postgresql", "otelperf.cache.name": "c"}, "app"),  # a request
        (SpanKind.SERVER, {"otelperf.component": "db"}, "db"),  # named by otelperf: as named
        (SpanKind.INTERNAL, {}, "app"),
    ]
    plain = [_plain(10 + i, kind, attributes) for i, (kind, attributes, _) in enumerate(cases)]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for kind, attributes, _ in cases:
        tracer.start_span("s", kind=kind, attributes=attributes).end()
    sdk = list(exporter.get_finished_spans())  # BoundedAttributes, properties only
    for spans in (plain, sdk):
        assert [component_of(s) for s in spans] == [want for _, _, want in cases]
        view = TraceView(spans[-1], spans)
        for component in ("db", "cache", "http", "app"):
            assert list(view.spans_of(component)) == [s for s in spans if component_of(s) == component]
