"""Leaf spans (``_leaf.py``) must come out as the SDK would have made them under the same parent."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

from otelperf._sdk.leaf import LeafSpans

pytestmark = pytest.mark.fast_paths  # see tests/conftest.py


def _parent(random_id: bool, remote: bool) -> SpanContext:
    # W3C level-2 "random trace id" is bit 0x02; APIs before 1.42 do not name it (and ignore it).
    flags = TraceFlags.SAMPLED | (getattr(TraceFlags, "RANDOM_TRACE_ID", 0x02) if random_id else 0)
    return SpanContext(
        0x5BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=remote,
        trace_flags=TraceFlags(flags),
        trace_state=TraceState([("vendor", "v1")]),
    )


@pytest.mark.parametrize("random_id", [True, False])
@pytest.mark.parametrize("remote", [True, False])
def test_a_leaf_span_matches_the_sdks_child_span(random_id: bool, remote: bool) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    leaf = LeafSpans(tracer)
    assert leaf.enabled
    parent = _parent(random_id, remote)

    leaf.emit("SELECT t", SpanKind.CLIENT, parent, 1_000, 2_000, {"db.system.name": "postgresql"})
    context = trace.set_span_in_context(NonRecordingSpan(parent))
    tracer.start_span(
        "SELECT t", context, SpanKind.CLIENT, {"db.system.name": "postgresql"}, start_time=1_000
    ).end(end_time=2_000)

    ours, sdk = exporter.get_finished_spans()
    assert ours.context is not None and sdk.context is not None
    assert ours.context.trace_flags == sdk.context.trace_flags  # incl. the random-trace-id bit
    assert ours.context.trace_state == sdk.context.trace_state
    assert ours.context.trace_id == sdk.context.trace_id
    assert ours.parent == sdk.parent
    assert (ours.name, ours.kind, ours.start_time, ours.end_time) == (
        sdk.name,
        sdk.kind,
        sdk.start_time,
        sdk.end_time,
    )
    assert dict(ours.attributes or {}) == dict(sdk.attributes or {})
    assert leaf.context_for(parent).trace_flags == sdk.context.trace_flags
    # Built without SpanContext(): still a SpanContext, and every field but the span id is the SDK's.
    assert type(ours.context) is SpanContext and ours.context.is_valid and not ours.context.is_remote
    assert ours.context == SpanContext(
        sdk.context.trace_id,
        ours.context.span_id,
        is_remote=False,
        trace_flags=sdk.context.trace_flags,
        trace_state=sdk.context.trace_state,
    )
    assert 0 < ours.context.span_id < 2**64


class _CountingIds(RandomIdGenerator):
    def __init__(self) -> None:
        self.next_id = 41

    def generate_span_id(self) -> int:
        self.next_id += 1
        return self.next_id


def test_an_apps_id_generator_is_asked_for_every_leaf_span_id() -> None:
    exporter = InMemorySpanExporter()
    ids = _CountingIds()
    provider = TracerProvider(id_generator=ids)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    leaf = LeafSpans(provider.get_tracer("t"))
    parent = _parent(True, False)
    for _ in range(2):
        leaf.emit("GET k", SpanKind.INTERNAL, parent, 1, 2, {})
    assert [s.context.span_id for s in exporter.get_finished_spans()] == [42, 43]


class _ForeignSpan(NonRecordingSpan):
    """A Span subclass parent_in() does not know: it must ask get_current_span()."""


def test_parent_in_equals_get_current_span_for_every_kind_of_current_span() -> None:
    from opentelemetry import context as otel_context
    from opentelemetry.trace import INVALID_SPAN_CONTEXT, get_current_span
    from opentelemetry.trace.propagation import _SPAN_KEY

    from otelperf._sdk import leaf as _leaf

    provider = TracerProvider()
    sdk_span = provider.get_tracer("t").start_span("s")
    parent = _parent(True, False)
    contexts = [
        otel_context.Context(),  # no current span
        trace.set_span_in_context(sdk_span),
        trace.set_span_in_context(NonRecordingSpan(parent)),
        trace.set_span_in_context(_ForeignSpan(parent)),
        otel_context.set_value(_SPAN_KEY, "not a span", otel_context.Context()),
    ]
    for context in contexts:
        assert _leaf.parent_in(context) == get_current_span(context).get_span_context()
    assert _leaf.parent_in(contexts[-1]) == INVALID_SPAN_CONTEXT
    assert _ForeignSpan not in _leaf._PLAIN_SPAN_TYPES
    with pytest.raises(TypeError):
        _leaf.register_plain_span_type(str)


def test_request_spans_are_read_as_they_are_and_readable_span_takes_positional_arguments() -> None:
    from otelperf._sdk import leaf as _leaf
    from otelperf._sdk.request_span import RequestSpan

    assert RequestSpan in _leaf._PLAIN_SPAN_TYPES
    # The fast paths are what the installed SDK gets (the leaf test above compares their output).
    assert _leaf._POSITIONAL


def test_readable_span_is_the_one_the_constructor_builds_with_keywords() -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from otelperf._sdk import leaf as _leaf

    parent = _parent(True, False)
    arguments = (
        "GET /x", SpanContext(parent.trace_id, 0x99, False), parent, Resource.create({"service.name": "s"}),
        {"k": "v"}, (Event("e", {}, 5),), (), SpanKind.CLIENT, _leaf.UNSET, 3, 7, InstrumentationScope("i"),
    )  # fmt: skip
    built = _leaf.readable_span(*arguments)
    assert type(built) is ReadableSpan
    assert vars(built) == vars(ReadableSpan(*arguments[:8], None, *arguments[8:]))
    # Without a resource the constructor makes one: that span is the constructor's own.
    assert _leaf.readable_span(*arguments[:3], None, *arguments[4:]).resource is not None


def test_every_processor_gets_leaf_spans_even_one_added_after_the_leaf_spans_were_made() -> None:
    provider = TracerProvider()
    first, later = InMemorySpanExporter(), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(first))
    leaf = LeafSpans(provider.get_tracer("t"))
    leaf.emit("a", SpanKind.INTERNAL, _parent(True, False), 1, 2, {})
    provider.add_span_processor(SimpleSpanProcessor(later))
    leaf.emit("b", SpanKind.INTERNAL, _parent(True, False), 3, 4, {})
    assert [s.name for s in first.get_finished_spans()] == ["a", "b"]
    assert [s.name for s in later.get_finished_spans()] == ["b"]
