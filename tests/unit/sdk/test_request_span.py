"""RequestSpan: the SERVER span otelperf builds itself behaves like the SDK's span where it matters."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from otelperf._sdk.request_span import RequestSpan, RequestSpans

pytestmark = pytest.mark.fast_paths  # see tests/conftest.py


def _setup(**provider_kwargs: object) -> tuple[RequestSpans, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(**provider_kwargs)  # type: ignore[arg-type]
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = RequestSpans(provider.get_tracer("t"))
    assert spans.enabled
    return spans, exporter


def _remote(sampled: bool) -> trace.Span:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=flags))


def test_ends_as_the_sdks_readable_span_once() -> None:
    spans, exporter = _setup()
    span = spans.start("GET", trace.set_span_in_context(_remote(True)), SpanKind.SERVER, {"url.path": "/x"})
    assert isinstance(span, RequestSpan) and span.is_recording()
    span.update_name("GET /x")
    span.set_trusted_attributes({"http.route": "/x", "http.response.status_code": 200})
    span.end()
    span.end()  # a second end is ignored, as in the SDK
    span.set_attribute("late", 1)  # after end: ignored
    (done,) = exporter.get_finished_spans()
    assert isinstance(done, ReadableSpan)
    assert done.name == "GET /x" and done.kind is SpanKind.SERVER
    assert done.context.trace_id == 0xABC and done.parent is not None and done.parent.span_id == 0xDEF
    assert done.context.trace_flags.sampled
    assert dict(done.attributes or {}) == {
        "url.path": "/x",
        "http.route": "/x",
        "http.response.status_code": 200,
    }
    assert done.start_time is not None and done.end_time is not None and done.start_time <= done.end_time


def test_the_sampler_decides_and_a_dropped_span_carries_the_decision() -> None:
    spans, exporter = _setup(sampler=ParentBased(TraceIdRatioBased(1.0)))
    unsampled = spans.start("GET", trace.set_span_in_context(_remote(False)), SpanKind.SERVER, None)
    assert not unsampled.is_recording()
    assert unsampled.get_span_context().trace_id == 0xABC
    assert not unsampled.get_span_context().trace_flags.sampled
    unsampled.end()
    assert exporter.get_finished_spans() == ()

    off, _ = _setup(sampler=ALWAYS_OFF)
    root = off.start("GET", trace.set_span_in_context(trace.INVALID_SPAN), SpanKind.SERVER, None)
    assert not root.is_recording() and root.get_span_context().is_valid


def test_a_root_gets_a_new_trace_id() -> None:
    spans, exporter = _setup()
    a = spans.start("GET", trace.set_span_in_context(trace.INVALID_SPAN), SpanKind.SERVER, None)
    b = spans.start("GET", trace.set_span_in_context(trace.INVALID_SPAN), SpanKind.SERVER, None)
    assert a.get_span_context().trace_id != b.get_span_context().trace_id
    a.end()
    (done,) = exporter.get_finished_spans()
    assert done.parent is None


def test_application_attributes_are_checked_and_limited_as_the_sdk_does() -> None:
    limits = SpanLimits(max_span_attributes=4, max_attribute_length=5)
    spans, exporter = _setup(span_limits=limits)
    oracle_exporter = InMemorySpanExporter()
    oracle = TracerProvider(span_limits=limits)
    oracle.add_span_processor(SimpleSpanProcessor(oracle_exporter))
    ours = spans.start("GET", trace.set_span_in_context(trace.INVALID_SPAN), SpanKind.SERVER, {"a": 1})
    theirs = oracle.get_tracer("t").start_span("GET", kind=SpanKind.SERVER, attributes={"a": 1})
    for span in (ours, theirs):
        span.set_attribute("bad", object())  # type: ignore[arg-type]  # not an attribute value
        span.set_attributes({"user.id": "abcdefgh", "tags": ["x", "y"]})
        span.set_attribute("mixed", [1, "a"])
        span.set_attribute("four", 4)
        span.set_attribute("one.too.many", 5)
        span.end()
    (done,) = exporter.get_finished_spans()
    (expected,) = oracle_exporter.get_finished_spans()
    assert dict(done.attributes or {}) == dict(expected.attributes or {})
    # The SDK's rules: invalid values dropped, strings truncated, the oldest evicted past the limit
    # (which values are invalid changed across SDK versions: 1.43 drops a mixed list, 1.45 keeps it).
    got = dict(done.attributes or {})
    assert len(got) == 4 and "bad" not in got and "a" not in got
    assert got["four"] == 4 and got["one.too.many"] == 5 and got["tags"] == ("x", "y")
    assert all(len(value) <= 5 for value in got.values() if isinstance(value, str))


def test_status_rules_match_the_sdk() -> None:
    spans, exporter = _setup()
    span = spans.start("GET", trace.set_span_in_context(trace.INVALID_SPAN), SpanKind.SERVER, None)
    span.set_status(StatusCode.UNSET)
    span.set_status(Status(StatusCode.ERROR, "boom"))
    span.set_status(StatusCode.OK)
    span.set_status(StatusCode.ERROR, "after ok: ignored")
    span.end()
    (done,) = exporter.get_finished_spans()
    assert done.status.status_code is StatusCode.OK


def test_record_exception_and_events() -> None:
    spans, exporter = _setup()
    span = spans.start("GET", trace.set_span_in_context(trace.INVALID_SPAN), SpanKind.SERVER, None)
    span.add_event("cache.warmed", {"keys": 3})
    try:
        raise ValueError("no such order")
    except ValueError as exc:
        span.record_exception(exc, escaped=True)
    span.add_link(SpanContext(1, 2, is_remote=True), {"why": "batch"})
    span.end()
    (done,) = exporter.get_finished_spans()
    warmed, exception = done.events
    assert warmed.name == "cache.warmed" and dict(warmed.attributes or {}) == {"keys": 3}
    assert exception.name == "exception"
    attributes = dict(exception.attributes or {})
    assert attributes["exception.type"] == "ValueError"
    assert attributes["exception.message"] == "no such order"
    assert attributes["exception.escaped"] == "True"
    assert "Traceback" in str(attributes["exception.stacktrace"])
    (link,) = done.links
    assert link.context.span_id == 2 and dict(link.attributes or {}) == {"why": "batch"}


def _sdk_span_events(limits: SpanLimits | None, n: int) -> tuple[list[str], int]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("t").start_span("GET")
    for i in range(n):
        span.add_event(f"e{i}")
    span.end()
    (done,) = exporter.get_finished_spans()
    return [e.name for e in done.events], done.dropped_events


@pytest.mark.parametrize("limits", [SpanLimits(max_events=3), None], ids=["max_events=3", "default"])
def test_events_beyond_the_limit_are_dropped_as_the_sdk_drops_them(limits: SpanLimits | None) -> None:
    # Non-default limits take the SDK's path; the default ones (128) the request span's own.
    n = 5 if limits is not None else 130
    spans, exporter = _setup(span_limits=limits)
    span = spans.start("GET", trace.set_span_in_context(trace.INVALID_SPAN), SpanKind.SERVER, None)
    assert (type(span) is RequestSpan) is (limits is None)
    for i in range(n):
        span.add_event(f"e{i}")
    span.end()
    (done,) = exporter.get_finished_spans()
    assert ([e.name for e in done.events], done.dropped_events) == _sdk_span_events(limits, n)
    assert done.dropped_events == 2


class _CountingSampler(ParentBased):
    """ParentBased(ALWAYS_ON) by behaviour, but not the SDK's own type: must be asked every time."""

    def __init__(self) -> None:
        super().__init__(ALWAYS_ON)
        self.calls = 0

    def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
        self.calls += 1
        result = super().should_sample(*args, **kwargs)  # type: ignore[arg-type]
        return SamplingResult(result.decision, {"sampler.extra": "yes"}, result.trace_state)


_SAMPLERS: dict[str, Callable[[], Sampler]] = {
    "always_on": lambda: ALWAYS_ON,
    "always_off": lambda: ALWAYS_OFF,
    "parentbased_always_on": lambda: ParentBased(ALWAYS_ON),
    "parentbased_always_off": lambda: ParentBased(ALWAYS_OFF),
    "parentbased_ratio": lambda: ParentBased(TraceIdRatioBased(0.5)),
    "parent_sampled_dropped": lambda: ParentBased(ALWAYS_ON, remote_parent_sampled=ALWAYS_OFF),
}


def _parents() -> dict[str, Context]:
    state = TraceState([("vendor", "v1")])
    out = {"root": trace.set_span_in_context(trace.INVALID_SPAN)}
    for sampled in (True, False):
        for remote in (True, False):
            flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
            ctx = SpanContext(0xABC, 0xDEF, is_remote=remote, trace_flags=flags, trace_state=state)
            out[f"{'remote' if remote else 'local'}-{'sampled' if sampled else 'unsampled'}"] = (
                trace.set_span_in_context(NonRecordingSpan(ctx))
            )
    return out


@pytest.mark.parametrize("sampler_name", sorted(_SAMPLERS))
def test_the_shortcut_for_the_sdks_plain_samplers_decides_as_the_sdk(sampler_name: str) -> None:
    """ALWAYS_ON/OFF and ParentBased(ALWAYS_ON) are decided without calling them: the decision,
    flags, trace state and attributes must be the SDK tracer's, for a root and every kind of parent."""
    import random

    for parent_name, parent in _parents().items():
        ours, ours_out = _setup(sampler=_SAMPLERS[sampler_name]())
        theirs_out = InMemorySpanExporter()
        provider = TracerProvider(sampler=_SAMPLERS[sampler_name]())
        provider.add_span_processor(SimpleSpanProcessor(theirs_out))
        random.seed(20261202)  # the same draws for the SDK's RandomIdGenerator and the inline ids
        sdk_span = provider.get_tracer("t").start_span("GET", parent, SpanKind.SERVER, {"url.path": "/x"})
        random.seed(20261202)
        span = ours.start("GET", parent, SpanKind.SERVER, {"url.path": "/x"})
        where = f"{sampler_name} / {parent_name}"
        fast = sampler_name in ("always_on", "parentbased_always_on") and sdk_span.is_recording()
        assert (type(span) is RequestSpan) is fast, where
        assert span.is_recording() == sdk_span.is_recording(), where
        assert span.get_span_context() == sdk_span.get_span_context(), where
        span.end()
        sdk_span.end()
        assert [dict(s.attributes or {}) for s in ours_out.get_finished_spans()] == [
            dict(s.attributes or {}) for s in theirs_out.get_finished_spans()
        ], where


def test_any_other_sampler_takes_the_sdks_path_and_is_asked_once() -> None:
    sampler = _CountingSampler()
    spans, exporter = _setup(sampler=sampler)
    span = spans.start(
        "GET", trace.set_span_in_context(trace.INVALID_SPAN), SpanKind.SERVER, {"url.path": "/x"}
    )
    assert type(span) is not RequestSpan
    assert spans.reason is not None and "sampler" in spans.reason
    span.end()
    assert sampler.calls == 1
    (done,) = exporter.get_finished_spans()
    # The SDK keeps the attributes its sampler returns (ALWAYS_ON returns the span's own).
    assert dict(done.attributes or {}) == {"sampler.extra": "yes"}


def test_parent_in_reads_a_request_spans_context_as_get_span_context_gives_it() -> None:
    from otelperf._sdk.leaf import parent_in

    spans, _ = _setup()
    span = spans.start("GET", trace.set_span_in_context(_remote(True)), SpanKind.SERVER, None)
    assert type(span) is RequestSpan
    context = trace.set_span_in_context(span)
    assert parent_in(context) is span.get_span_context() is trace.get_current_span(context).get_span_context()


@pytest.mark.parametrize("parent", ["root", "remote sampled", "remote with trace state"])
def test_ids_and_context_made_inline_are_the_id_generators_and_span_contexts(parent: str) -> None:
    import random

    spans, _ = _setup()
    assert spans._gate.open()  # the SDK's default generator: the inline path
    state = TraceState([("vendor", "v1")])
    parents = {
        "root": Context(),
        "remote sampled": trace.set_span_in_context(_remote(True)),
        "remote with trace state": trace.set_span_in_context(
            NonRecordingSpan(SpanContext(0xABC, 0xDEF, True, TraceFlags(TraceFlags.SAMPLED), state))
        ),
    }
    random.seed(20261127)
    span = spans.start("GET", parents[parent], SpanKind.SERVER, None)
    random.seed(20261127)  # the same draws, through the SDK's generator and constructor
    ids = RandomIdGenerator()
    remote = trace.get_current_span(parents[parent]).get_span_context()
    trace_id = remote.trace_id if remote.is_valid else ids.generate_trace_id()
    expected = SpanContext(
        trace_id,
        ids.generate_span_id(),
        is_remote=False,
        trace_flags=span.get_span_context().trace_flags,
        trace_state=remote.trace_state if remote.is_valid else None,
    )
    got = span.get_span_context()
    assert type(got) is SpanContext
    assert tuple(got) == tuple(expected)
    assert got.is_valid and got.trace_state == (state if parent.endswith("state") else TraceState())
