"""FastHistogram: the same data points the SDK's histogram produces, through the SDK's own readers."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics import Histogram as SDKHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otelperf.pipeline.fast_histograms import FastMeter, FastMetrics

BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0]
SCOPE = "otelperf-test"
VALUES = [0.001, 0.005, 0.0051, 0.02, 0.02, 0.3, 0.9, 1.0, 7.5, 0.0]
ATTRS = [{"http.route": "/a", "http.response.status_code": 200}, {"http.route": "/b"}]


def _fast_provider(
    reader: InMemoryMetricReader, limit: int | None = None, exemplar_share: float = 1.0
) -> tuple[FastMeter, MeterProvider]:
    resource = Resource.create({"service.name": "fast"})
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    fast = FastMetrics(resource, InstrumentationScope(SCOPE, "1"), exemplar_share=exemplar_share)
    fast.attach(reader)
    meter = FastMeter(provider.get_meter(SCOPE, "1"), fast)
    return meter, provider


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]


def _by_route(points: list[Any]) -> dict[str, Any]:
    return {p.attributes.get("http.route"): p for p in points}


def test_data_points_equal_the_sdk_histograms() -> None:
    sdk_reader, fast_reader = InMemoryMetricReader(), InMemoryMetricReader()
    sdk_meter = MeterProvider(metric_readers=[sdk_reader]).get_meter(SCOPE)
    fast_meter, _ = _fast_provider(fast_reader)
    kwargs: dict[str, Any] = {"unit": "s", "explicit_bucket_boundaries_advisory": BOUNDS}
    sdk_hist = sdk_meter.create_histogram("d", **kwargs)
    fast_hist = fast_meter.create_histogram("d", **kwargs)
    for i, value in enumerate(VALUES):
        sdk_hist.record(value, ATTRS[i % 2])
        fast_hist.record(value, ATTRS[i % 2])

    sdk_points, fast_points = _by_route(_points(sdk_reader, "d")), _by_route(_points(fast_reader, "d"))
    assert sorted(sdk_points) == sorted(fast_points) == ["/a", "/b"]
    for route, expected in sdk_points.items():
        got = fast_points[route]
        assert dict(got.attributes) == dict(expected.attributes)
        assert (got.count, got.min, got.max) == (expected.count, expected.min, expected.max)
        assert got.sum == expected.sum
        assert list(got.bucket_counts) == list(expected.bucket_counts)
        assert list(got.explicit_bounds) == list(expected.explicit_bounds)


def test_metrics_of_both_kinds_share_one_scope_and_resource() -> None:
    reader = InMemoryMetricReader()
    meter, _ = _fast_provider(reader)
    meter.create_counter("c").add(2)
    meter.create_histogram("h", unit="s").record(0.1)
    data = reader.get_metrics_data()
    assert data is not None
    assert len(data.resource_metrics) == 1
    (rm,) = data.resource_metrics
    assert rm.resource.attributes["service.name"] == "fast"
    (sm,) = rm.scope_metrics
    assert sm.scope.name == SCOPE
    assert sorted(m.name for m in sm.metrics) == ["c", "h"]


def test_histogram_alone_still_reaches_the_reader() -> None:
    reader = InMemoryMetricReader()
    meter, _ = _fast_provider(reader)
    meter.create_histogram("only", unit="s").record(0.2, {"k": "v"})
    (point,) = _points(reader, "only")
    assert point.count == 1 and point.sum == 0.2


def test_exemplar_per_bucket_from_sampled_spans_only() -> None:
    reader = InMemoryMetricReader()
    meter, _ = _fast_provider(reader)
    hist = meter.create_histogram("e", unit="s", explicit_bucket_boundaries_advisory=BOUNDS)
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("sampled") as span:
        hist.record(0.02)
        ctx = span.get_span_context()
    unsampled = NonRecordingSpan(SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(0)))
    hist.record(0.3, context=trace.set_span_in_context(unsampled))
    hist.record(0.4)  # no span at all
    (point,) = _points(reader, "e")
    assert point.count == 3
    (exemplar,) = point.exemplars
    assert (exemplar.trace_id, exemplar.span_id, exemplar.value) == (ctx.trace_id, ctx.span_id, 0.02)


def test_in_production_mode_exemplars_come_only_from_traces_in_the_export_share() -> None:
    """An exemplar must lead to a trace that was exported: in production mode, one in the share."""
    from otelperf.pipeline.share import in_share, share_limit

    reader = InMemoryMetricReader()
    meter, _ = _fast_provider(reader, exemplar_share=0.25)
    hist = meter.create_histogram("e", unit="s", explicit_bucket_boundaries_advisory=BOUNDS)
    low = 1 << 64
    inside = SpanContext(7 * low + 3, 0x11, is_remote=False, trace_flags=TraceFlags(1))  # low bits: 3
    outside = SpanContext(7 * low + (low - 5), 0x22, is_remote=False, trace_flags=TraceFlags(1))
    assert in_share(inside.trace_id, share_limit(0.25)) and not in_share(outside.trace_id, share_limit(0.25))
    hist.record(0.02, context=trace.set_span_in_context(NonRecordingSpan(inside)))  # bucket (0.01, 0.025]
    hist.record(0.3, context=trace.set_span_in_context(NonRecordingSpan(outside)))  # bucket (0.1, 0.5]
    hist.record(0.021, context=trace.set_span_in_context(NonRecordingSpan(outside)))  # same bucket as 0.02
    (point,) = _points(reader, "e")
    assert point.count == 3
    assert [(e.trace_id, e.span_id, e.value) for e in point.exemplars] == [(inside.trace_id, 0x11, 0.02)]


def test_delta_reader_gets_only_what_is_new() -> None:
    reader = InMemoryMetricReader(preferred_temporality={SDKHistogram: AggregationTemporality.DELTA})
    meter, _ = _fast_provider(reader)
    hist = meter.create_histogram("d", unit="s", explicit_bucket_boundaries_advisory=BOUNDS)
    hist.record(0.02, {"r": "a"})
    hist.record(0.02, {"r": "a"})
    first = _points(reader, "d")
    hist.record(0.3, {"r": "a"})
    (second,) = _points(reader, "d")
    assert [p.count for p in first] == [2]
    assert second.count == 1 and second.sum == 0.3
    assert second.start_time_unix_nano >= first[0].time_unix_nano
    assert _points(reader, "d") == []  # nothing new, no point


def test_cumulative_reader_keeps_totals() -> None:
    reader = InMemoryMetricReader()
    meter, _ = _fast_provider(reader)
    hist = meter.create_histogram("c", unit="s")
    hist.record(1.0)
    _points(reader, "c")
    hist.record(2.0)
    (point,) = _points(reader, "c")
    assert (point.count, point.sum, point.min, point.max) == (2, 3.0, 1.0, 2.0)


def test_cardinality_is_bounded_with_an_overflow_series() -> None:
    reader = InMemoryMetricReader()
    resource = Resource.create({})
    MeterProvider(resource=resource, metric_readers=[reader])
    fast = FastMetrics(resource, InstrumentationScope(SCOPE))
    hist = fast.histogram("card", "s", "", BOUNDS)
    hist._limit = 3  # small limit for the test
    for i in range(10):
        hist.record(0.01, {"id": i})
    assert len(hist._series) == 4  # 3 + the overflow series
    assert sum(s.count for s in hist._series.values()) == 10


def test_sequence_attribute_values_and_negative_values() -> None:
    reader = InMemoryMetricReader()
    meter, _ = _fast_provider(reader)
    hist = meter.create_histogram("s", unit="s")
    hist.record(0.1, {"tags": ["a", "b"]})
    hist.record(-1.0)  # dropped, as the SDK drops it
    (point,) = _points(reader, "s")
    assert point.count == 1


def test_same_name_returns_the_same_instrument() -> None:
    reader = InMemoryMetricReader()
    meter, _ = _fast_provider(reader)
    assert meter.create_histogram("x") is meter.create_histogram("x")


def test_keyed_records_give_the_same_points_and_exemplars_as_record() -> None:
    """``record_keyed`` (the ASGI middleware's path: the attribute set keyed once) must leave the
    same data points as ``record`` with the same values, attributes and spans."""
    sampled = SpanContext(0xA1, 0xB2, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    unsampled = SpanContext(0xA3, 0xB4, is_remote=False, trace_flags=TraceFlags(0))
    calls = [(value, ATTRS[i % 2], (sampled, unsampled, None)[i % 3]) for i, value in enumerate(VALUES * 3)]
    got = []
    for keyed in (False, True):
        reader = InMemoryMetricReader()
        meter, _ = _fast_provider(reader)
        hist = meter.create_histogram("k", unit="s", explicit_bucket_boundaries_advisory=BOUNDS)
        for value, attrs, ctx in calls:
            if keyed:
                hist.record_keyed(value, frozenset(attrs.items()), attrs, ctx)  # type: ignore[attr-defined]
            else:
                context = trace.set_span_in_context(NonRecordingSpan(ctx)) if ctx is not None else None
                hist.record(value, attrs, context=context)
        got.append(
            {
                route: (
                    p.count,
                    p.sum,
                    p.min,
                    p.max,
                    tuple(p.bucket_counts),
                    sorted((e.value, e.trace_id, e.span_id) for e in p.exemplars),
                )
                for route, p in _by_route(_points(reader, "k")).items()
            }
        )
    assert got[0] == got[1]
    assert got[1]["/a"][5], "sampled measurements leave exemplars"
