"""otelperf's OTLP encoder against the SDK's: both outputs must decode to equal messages.

Spans come from a real SDK TracerProvider; each test decodes ``encode_spans(spans)`` of both
encoders with ``ExportTraceServiceRequest`` and compares the messages (protobuf equality compares
doubles bit for bit, so 0.0 and -0.0 differ, and field order on the wire does not matter).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from otelperf._sdk import readable as _readable
from otelperf.export import encode as _otlp_encode
from otelperf.export.encode import encode_spans

_REMOTE_CTX = SpanContext(
    trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
    span_id=0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "v1"), ("other", "x-y")]),
)


class _Recorder:
    """A TracerProvider that keeps its finished spans in memory."""

    def __init__(self, resource: Resource | None = None, span_limits: SpanLimits | None = None) -> None:
        kwargs: dict[str, Any] = {"span_limits": span_limits}
        if resource is not None:
            kwargs["resource"] = resource
        self.provider = TracerProvider(**kwargs)
        self.exporter = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def tracer(self, name: str = "test", version: str | None = None, **kwargs: Any) -> trace.Tracer:
        return self.provider.get_tracer(name, version, **kwargs)

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()


@pytest.fixture
def rec() -> Iterator[_Recorder]:
    recorder = _Recorder()
    yield recorder
    recorder.provider.shutdown()


def _decode(data: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    message.ParseFromString(data)
    return message


def _value_of(value: Any) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


def _sdk_encoder_leaves_out_scope_fields() -> bool:
    """Older SDK encoders (1.30 at least) leave out a scope's attributes and schema URL; otelperf's
    writes them, as the SDK's does from later versions on. Probed on the installed SDK."""
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    span = ReadableSpan(
        "probe",
        context=SpanContext(1, 2, False),
        instrumentation_scope=InstrumentationScope("s", "1", "https://example.com/s", {"a": "b"}),
        start_time=1,
        end_time=2,
    )
    encoded = _decode(sdk_encode_spans([span]).SerializeToString())
    scope_spans = encoded.resource_spans[0].scope_spans[0]
    return not scope_spans.scope.attributes or not scope_spans.schema_url


_SDK_LEAVES_OUT_SCOPE_FIELDS = _sdk_encoder_leaves_out_scope_fields()


def assert_same_as_sdk(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """Both encoders give equal messages; returns otelperf's, decoded.

    With an SDK whose encoder leaves out scope attributes and schema URLs, those two fields are
    compared with the spans' own scopes instead (otelperf writes them; the tests that set them
    assert on them too)."""
    expected = _decode(sdk_encode_spans(spans).SerializeToString())
    actual = _decode(encode_spans(spans))
    compared = actual
    if _SDK_LEAVES_OUT_SCOPE_FIELDS:
        compared = ExportTraceServiceRequest()
        compared.CopyFrom(actual)

        def key(name: str, version: str, schema_url: str, attributes: Any) -> tuple[Any, ...]:
            return name, version or "", schema_url or "", tuple(sorted((k, str(v)) for k, v in attributes))

        own = {
            key(scope.name, scope.version or "", scope.schema_url or "", dict(scope.attributes or {}).items())
            if scope is not None
            else key("", "", "", ())  # a span without a scope is written under an empty one
            for scope in (sp.instrumentation_scope for sp in spans)
        }
        written = set()
        for resource_spans in compared.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                scope = scope_spans.scope
                attributes = [(kv.key, _value_of(kv.value)) for kv in scope.attributes]
                written.add(key(scope.name, scope.version, scope_spans.schema_url, attributes))
                del scope.attributes[:]
                scope_spans.schema_url = ""
        assert written == own
    assert compared == expected
    return actual


def _only_span(message: ExportTraceServiceRequest) -> PbSpan:
    (span,) = _only_scope(message)
    return span


@pytest.mark.parametrize("kind", list(SpanKind))
def test_every_span_kind(rec: _Recorder, kind: SpanKind) -> None:
    with rec.tracer().start_as_current_span("op", kind=kind):
        pass
    span = _only_span(assert_same_as_sdk(rec.spans))
    assert PbSpan.SpanKind.Name(span.kind) == f"SPAN_KIND_{kind.name}"


_VALUES: list[Any] = [
    "",
    "GET /orders/{id}",
    "ünïcødé ✓ 日本語 עברית 🚀👩‍👩‍👧",
    0,
    1,
    -1,
    127,
    128,
    -(2**63),
    2**63 - 1,
    1234567890123,
    0.0,
    -0.0,
    1.5,
    -2.25,
    1e300,
    float("inf"),
    float("-inf"),
    float("nan"),
    True,
    False,
    (),
    ("a", "", "ü🚀"),
    (1, -2, 2**63 - 1, -(2**63)),
    (0.5, -0.0, float("inf")),
    (True, False, True),
    b"\x00\xffbytes",
]


@pytest.mark.parametrize("value", _VALUES, ids=repr)
def test_attribute_value(rec: _Recorder, value: Any) -> None:
    with rec.tracer().start_as_current_span("op", attributes={"k": value}):
        pass
    (sdk_span,) = rec.spans
    kept = "k" in sdk_span.attributes  # type: ignore[operator]
    # Every SDK in the supported range keeps these values; bytes only newer ones (not 1.43).
    assert kept or isinstance(value, bytes)
    span = _only_span(assert_same_as_sdk(rec.spans))
    assert [kv.key for kv in span.attributes] == (["k"] if kept else [])


def test_many_attributes_keep_their_order(rec: _Recorder) -> None:
    attributes = {f"key.{i}": value for i, value in enumerate(_VALUES)}
    with rec.tracer().start_as_current_span("op", attributes=attributes):
        pass
    (sdk_span,) = rec.spans
    kept = [key for key in attributes if key in sdk_span.attributes]  # type: ignore[operator]
    assert [key for key in attributes if key not in kept] in ([], [f"key.{len(_VALUES) - 1}"])  # bytes
    span = _only_span(assert_same_as_sdk(rec.spans))
    assert [kv.key for kv in span.attributes] == kept


@pytest.mark.parametrize(
    "bad",
    [2**63, 2**64, 2**70, -(2**63) - 1, (1, 2**64), "lone \ud800 surrogate", ("ok", "\udfff")],
    ids=repr,
)
def test_values_otlp_cannot_carry_are_dropped_like_the_sdk_drops_them(rec: _Recorder, bad: Any) -> None:
    # The SDK accepts these on the span, then its encoder logs and drops the attribute. An int
    # wider than 64 bits must not become an over-long varint that corrupts the whole request.
    with rec.tracer().start_as_current_span("op", attributes={"before": 1, "bad": bad, "after": "x"}):
        pass
    span = _only_span(assert_same_as_sdk(rec.spans))
    assert [kv.key for kv in span.attributes] == ["before", "after"]


def test_attribute_key_with_lone_surrogate_is_dropped_like_the_sdk(rec: _Recorder) -> None:
    with rec.tracer().start_as_current_span("op", attributes={"a\ud800": "v", "b": "v"}):
        pass
    span = _only_span(assert_same_as_sdk(rec.spans))
    assert [kv.key for kv in span.attributes] == ["b"]


def test_unicode_names_everywhere() -> None:
    text = "ünï ✓ 日本 🚀 e\u0301"
    recorder = _Recorder(resource=Resource({"service.name": text, text: text}))
    tracer = recorder.tracer(text, text, schema_url="https://example.com/" + text, attributes={text: text})
    with tracer.start_as_current_span(text, attributes={text: (text, text)}) as span:
        span.add_event(text, {text: text})
        span.set_status(Status(StatusCode.ERROR, text))
    decoded = _only_span(assert_same_as_sdk(recorder.spans))
    assert decoded.name == text
    assert decoded.status.message == text


def test_span_name_with_lone_surrogate_is_replaced_where_the_sdk_fails_the_batch(rec: _Recorder) -> None:
    # A deliberate difference: the SDK's encoder raises and loses the whole batch.
    with rec.tracer().start_as_current_span("a\ud800b"):
        pass
    with pytest.raises(UnicodeEncodeError):
        sdk_encode_spans(rec.spans)
    assert _only_span(_decode(encode_spans(rec.spans))).name == "a?b"


def test_events_with_and_without_attributes(rec: _Recorder) -> None:
    with rec.tracer().start_as_current_span("op") as span:
        span.add_event("plain")
        span.add_event("with attributes", {"a": 1, "b": ("x", "y"), "c": 2.5, "d": False}, timestamp=1_000)
        span.add_event("", {"only": "attributes"})
        span.record_exception(ValueError("boom"))
    decoded = _only_span(assert_same_as_sdk(rec.spans))
    assert [event.name for event in decoded.events] == ["plain", "with attributes", "", "exception"]


def test_links_with_attributes_trace_state_and_remote_context(rec: _Recorder) -> None:
    local = SpanContext(trace_id=7, span_id=8, is_remote=False, trace_state=TraceState([("k", "v")]))
    links = [
        Link(_REMOTE_CTX, {"link.kind": "follows", "n": 3, "tags": ("a", "b")}),
        Link(local),
        Link(local, {"empty": ()}),
    ]
    with rec.tracer().start_as_current_span("op", links=links):
        pass
    decoded = _only_span(assert_same_as_sdk(rec.spans))
    assert [link.flags for link in decoded.links] == [0x300, 0x100, 0x100]


@pytest.mark.parametrize(
    "status",
    [
        None,
        Status(StatusCode.OK),
        Status(StatusCode.ERROR),
        Status(StatusCode.ERROR, "db timeout"),
        Status(StatusCode.UNSET),
    ],
    ids=repr,
)
def test_status(rec: _Recorder, status: Status | None) -> None:
    with rec.tracer().start_as_current_span("op", set_status_on_exception=False) as span:
        if status is not None:
            span.set_status(status)
    decoded = _only_span(assert_same_as_sdk(rec.spans))
    expected = status or Status()
    assert decoded.status.code == expected.status_code.value
    assert decoded.status.message == (expected.description or "")


def test_root_local_parent_and_remote_parent(rec: _Recorder) -> None:
    tracer = rec.tracer()
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("local child"):
        pass
    remote = trace.set_span_in_context(NonRecordingSpan(_REMOTE_CTX))
    with tracer.start_as_current_span("remote child", context=remote, kind=SpanKind.SERVER):
        pass
    decoded = {span.name: span for span in _only_scope(assert_same_as_sdk(rec.spans))}
    assert decoded["root"].parent_span_id == b""
    assert decoded["local child"].parent_span_id == decoded["root"].span_id
    assert decoded["remote child"].parent_span_id == _REMOTE_CTX.span_id.to_bytes(8, "big")
    assert {name: span.flags for name, span in decoded.items()} == {
        "root": 0x100,
        "local child": 0x100,
        "remote child": 0x300,
    }
    # The child inherits the remote parent's trace_state.
    assert decoded["remote child"].trace_state == "vendor=v1,other=x-y"


def _only_scope(message: ExportTraceServiceRequest) -> list[PbSpan]:
    (resource_spans,) = message.resource_spans
    (scope_spans,) = resource_spans.scope_spans
    return list(scope_spans.spans)


def test_dropped_attribute_event_and_link_counts() -> None:
    limits = SpanLimits(
        max_span_attributes=2,
        max_events=1,
        max_links=1,
        max_event_attributes=1,
        max_link_attributes=1,
    )
    recorder = _Recorder(span_limits=limits)
    links = [Link(_REMOTE_CTX), Link(_REMOTE_CTX, {"a": 1, "b": 2, "c": 3})]  # the last link is kept
    with recorder.tracer().start_as_current_span(
        "op", links=links, attributes={"a": 1, "b": 2, "c": 3}
    ) as span:
        span.set_attribute("d", 4)
        span.add_event("first")
        span.add_event("second", {"x": 1, "y": 2})  # the newest events are kept
    decoded = _only_span(assert_same_as_sdk(recorder.spans))
    assert (decoded.dropped_attributes_count, decoded.dropped_events_count, decoded.dropped_links_count) == (
        2,
        1,
        1,
    )
    assert decoded.events[0].dropped_attributes_count == 1
    assert decoded.links[0].dropped_attributes_count == 2


def test_several_resources_and_scopes_in_one_batch() -> None:
    shop = _Recorder(resource=Resource({"service.name": "shop", "deployment.environment.name": "test"}))
    billing = _Recorder(
        resource=Resource({"service.name": "billing"}, schema_url="https://opentelemetry.io/schemas/1.26.0")
    )
    tracers = [
        shop.tracer("otelperf.db", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.21.0"),
        shop.tracer("otelperf.http", "0.1", attributes={"scope.attr": "yes", "n": 2}),
        billing.tracer("otelperf.db", "1.2.3"),
        billing.tracer(""),
    ]
    # Interleaved, so the grouping (first-seen order, spans in order inside a group) matters.
    for i in range(12):
        with tracers[i % 4].start_as_current_span(f"span {i}"):
            pass
    batch = [span for pair in zip(shop.spans, billing.spans, strict=True) for span in pair]
    decoded = assert_same_as_sdk(batch)
    assert [len(rs.scope_spans) for rs in decoded.resource_spans] == [2, 2]


def test_equal_resources_and_scopes_from_different_providers_share_a_group() -> None:
    # Resource and InstrumentationScope compare by value, and the SDK's encoder groups by value.
    first = _Recorder(resource=Resource({"service.name": "shop"}))
    second = _Recorder(resource=Resource({"service.name": "shop"}))
    for recorder in (first, second, first):
        with recorder.tracer("otelperf.db", "1").start_as_current_span("q"):
            pass
    batch = [first.spans[0], second.spans[0], first.spans[1]]
    assert batch[0].resource is not batch[1].resource
    assert len(_only_scope(assert_same_as_sdk(batch))) == 3


def test_empty_batch() -> None:
    assert encode_spans([]) == b""
    assert _decode(encode_spans([])) == sdk_encode_spans([])


def test_randomized_spans_property() -> None:
    """Many spans drawn at random from everything above, in several batches, equal the SDK's."""
    rng = random.Random(20240611)
    recorders = [
        _Recorder(resource=Resource({"service.name": "a"})),
        _Recorder(resource=Resource({"service.name": "b"}), span_limits=SpanLimits(max_span_attributes=5)),
    ]
    tracers = [r.tracer(name, version) for r in recorders for name, version in (("x", "1"), ("y", None))]
    pool: list[Any] = [v for v in _VALUES if v is not _VALUES[18]] + ["GET", "SELECT 1", 200, 404, 0.25]
    keys = ["http.request.method", "url.path", "db.system.name", "k", "ü", "n"]
    for _ in range(300):
        tracer = rng.choice(tracers)
        parent = trace.set_span_in_context(NonRecordingSpan(_REMOTE_CTX)) if rng.random() < 0.3 else None
        attributes = {rng.choice(keys): rng.choice(pool) for _ in range(rng.randrange(8))}
        links = [Link(_REMOTE_CTX, {rng.choice(keys): rng.choice(pool)})] if rng.random() < 0.2 else []
        with tracer.start_as_current_span(
            rng.choice(["op", "SELECT shop", "🚀"]),
            context=parent,
            kind=rng.choice(list(SpanKind)),
            attributes=attributes,
            links=links,
        ) as span:
            for _ in range(rng.randrange(3)):
                span.add_event(rng.choice(["e", "exception"]), {rng.choice(keys): rng.choice(pool)})
            if rng.random() < 0.3:
                span.set_status(Status(StatusCode.ERROR, rng.choice([None, "bad"])))
    spans = [span for r in recorders for span in r.spans]
    rng.shuffle(spans)
    for start in range(0, len(spans), 64):
        assert_same_as_sdk(spans[start : start + 64])


@pytest.mark.fast_paths
def test_otelperf_shaped_spans_take_the_short_path_and_still_equal_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """otelperf's own spans (a plain ReadableSpan, dict attributes, list events and links) are
    encoded from the span's fields directly; the result must still be the SDK encoder's, and every
    such span without events or links must take that path."""
    rng = random.Random(7)
    recorder = _Recorder(resource=Resource({"service.name": "plain"}))
    tracer = recorder.tracer("otelperf", "1")
    pool: list[Any] = [v for v in _VALUES if v is not _VALUES[18]] + ["GET", "SELECT 1", 200, 0.25, True]
    keys = ["http.request.method", "url.path", "db.system.name", "k", "ü"]
    for _ in range(200):
        parent = trace.set_span_in_context(NonRecordingSpan(_REMOTE_CTX)) if rng.random() < 0.3 else None
        with tracer.start_as_current_span(
            rng.choice(["op", "GET /x", "🚀", ""]),
            context=parent,
            kind=rng.choice(list(SpanKind)),
            attributes={rng.choice(keys): rng.choice(pool) for _ in range(rng.randrange(8))},
        ) as span:
            if rng.random() < 0.2:
                span.add_event("e", {"k": rng.choice(pool)})
            if rng.random() < 0.3:
                span.set_status(Status(StatusCode.ERROR, rng.choice([None, "bad"])))
    plain = [
        ReadableSpan(
            s.name,
            context=s.context,
            parent=s.parent,
            resource=s.resource,
            attributes=dict(s.attributes or {}),
            events=list(s.events),
            links=list(s.links),
            kind=s.kind,
            status=s.status,
            start_time=s.start_time,
            end_time=s.end_time,
            instrumentation_scope=s.instrumentation_scope,
        )
        for s in recorder.spans
    ]
    general = []
    real_general = _otlp_encode._span_general

    def counting(span: ReadableSpan) -> bytes:
        general.append(span)
        return real_general(span)

    monkeypatch.setattr(_otlp_encode, "_span_general", counting)
    for start in range(0, len(plain), 50):
        assert_same_as_sdk(plain[start : start + 50])
    assert general and all(s.events or s.links for s in general)  # only those with events took it
    recorder.provider.shutdown()


# --- the attribute cache -------------------------------------------------------------------------


def test_cache_tells_apart_values_equal_across_types(rec: _Recorder) -> None:
    # True == 1 == 1.0 and 0 == 0.0 == -0.0 == False in Python; each must keep its own encoding.
    values: list[Any] = [True, 1, 1.0, "1", False, 0, 0.0, -0.0, "True"]
    _otlp_encode._kv_cache.clear()
    for value in values:
        with rec.tracer().start_as_current_span("op", attributes={"k": value}):
            pass
    for _ in range(2):  # cold, then from the cache; one span per call, then all together
        for span in rec.spans:
            assert_same_as_sdk([span])
        assert_same_as_sdk(rec.spans)
    decoded = [_only_span(_decode(encode_spans([span]))).attributes[0].value for span in rec.spans]
    kinds = [value.WhichOneof("value") for value in decoded]
    assert kinds == [
        "bool_value",
        "int_value",
        "double_value",
        "string_value",
        "bool_value",
        "int_value",
        "double_value",
        "double_value",
        "string_value",
    ]
    assert str(decoded[7].double_value) == "-0.0"


def test_cache_keeps_each_place_an_attribute_can_appear_apart() -> None:
    # The same pair on the resource, the scope, the span, an event and a link: each lives in a
    # different protobuf field, so a cached encoding must not be reused across them.
    pair = {"shared.key": "shared value"}
    _otlp_encode._kv_cache.clear()
    recorder = _Recorder(resource=Resource(pair))
    tracer = recorder.tracer("scope", attributes=pair)
    for _ in range(2):
        with tracer.start_as_current_span("op", attributes=pair, links=[Link(_REMOTE_CTX, pair)]) as span:
            span.add_event("e", pair)
    message = assert_same_as_sdk(recorder.spans)
    span = message.resource_spans[0].scope_spans[0].spans[1]
    assert (
        span.attributes[0].key
        == span.events[0].attributes[0].key
        == span.links[0].attributes[0].key
        == "shared.key"
    )


def test_cache_is_bounded_and_correct_after_it_is_cleared(rec: _Recorder) -> None:
    limit = _otlp_encode._KV_CACHE_MAX
    _otlp_encode._kv_cache.clear()
    per_span = 100
    tracer = rec.tracer()
    for start in range(0, limit + 3 * per_span, per_span):
        with tracer.start_as_current_span(
            "op", attributes={f"k{start + i}": start + i for i in range(per_span)}
        ):
            pass
    spans = rec.spans
    assert len(spans) * per_span > limit
    for span in spans:
        encode_spans([span])
        assert len(_otlp_encode._kv_cache) <= limit
    assert len(_otlp_encode._kv_cache) < len(spans) * per_span  # it was cleared on the way
    # Entries from before and after the clear both encode correctly.
    assert_same_as_sdk(spans)
    assert_same_as_sdk([spans[0], spans[-1]])


@pytest.mark.fast_paths
def test_attribute_blocks_are_cached_apart_by_type_and_never_for_floats_or_sequences() -> None:
    """Whole attribute blocks are cached by their pairs and types: equal-but-different values
    (1 / True, [1] / [True], 0.0 / -0.0) must each keep their own encoding."""
    _otlp_encode._block_cache.clear()
    variants: list[dict[str, Any]] = [
        {"k": 1, "s": "x"},
        {"k": True, "s": "x"},
        {"k": (1,), "s": "x"},
        {"k": (True,), "s": "x"},
        {"k": 0.0, "s": "x"},
        {"k": -0.0, "s": "x"},
        {"k": "1", "s": "x"},
    ]
    spans = [
        ReadableSpan(
            "op",
            context=SpanContext(0xA, 0xB + i, is_remote=False),
            resource=Resource({"service.name": "blocks"}),
            attributes=attrs,
        )
        for i, attrs in enumerate(variants * 2)  # twice: the second time from the cache
    ]
    assert_same_as_sdk(spans)
    cached_kinds = {kinds for _, kinds in _otlp_encode._block_cache}
    assert (int, str) in cached_kinds and (bool, str) in cached_kinds
    assert not any(float in kinds or tuple in kinds for kinds in cached_kinds)


def _leaf_like(
    trace_id: int, parent_id: int | None, span_id: int, attributes: dict[str, Any]
) -> ReadableSpan:
    resource = _LEAF_RESOURCE
    parent = None if parent_id is None else SpanContext(trace_id, parent_id, False, TraceFlags(1))
    return ReadableSpan(
        "SELECT t",
        context=SpanContext(trace_id, span_id, False, TraceFlags(1)),
        parent=parent,
        resource=resource,
        attributes=attributes,
        kind=SpanKind.CLIENT,
        start_time=span_id,
        end_time=span_id + 5,
    )


_LEAF_RESOURCE = Resource({"service.name": "leaf"})


def test_runs_of_one_trace_and_shared_attribute_dicts_equal_the_sdk() -> None:
    """A request's spans come in runs (one trace, often one parent) and an instrumentation may hand
    one attributes dict to many spans: the fields and blocks reused for them must stay right when
    the trace, the parent or the dict changes, and across batches."""
    rng = random.Random(3)
    shared = [{"db.system.name": "sqlite", "db.query.text": f"SELECT {i}"} for i in range(3)]
    spans = []
    span_id = 1
    for trace_id in [rng.getrandbits(128) | 1 for _ in range(6)] * 2:  # each trace twice, apart
        parents: list[int | None] = [None, rng.getrandbits(64) | 1, rng.getrandbits(64) | 1]
        for _ in range(rng.randrange(1, 8)):
            span_id += 1
            attributes = rng.choice(shared) if rng.random() < 0.7 else dict(rng.choice(shared))
            spans.append(_leaf_like(trace_id, rng.choice(parents), span_id, attributes))
    for start in range(0, len(spans), 7):
        assert_same_as_sdk(spans[start : start + 7])
    assert_same_as_sdk(spans)


def test_an_sdk_whose_readable_span_fields_differ_takes_the_general_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spans = [_leaf_like(7, None if i == 0 else 9, 10 + i, {"k": "v"}) for i in range(3)]
    fast = encode_spans(spans)
    monkeypatch.setattr(_readable, "FIELDS_HOLD", False)
    general = []
    real_general = _otlp_encode._span_general
    monkeypatch.setattr(_otlp_encode, "_span_general", lambda s: general.append(s) or real_general(s))
    assert encode_spans(spans) == fast
    assert general == spans
