"""The export-side pass over spans otelperf did not record: the SDK's own record_exception."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from sqlalchemy import create_engine, text

from otelperf import redaction
from otelperf.config import resolve_settings
from otelperf.redaction.span_filter import ScrubbingSpanExporter, needs_scrub, scrub_span

CANARY = "cn4ry-span"


@pytest.fixture(autouse=True)
def _default_policy() -> Iterator[None]:
    redaction.configure()
    yield
    redaction.configure()


@pytest.fixture
def pipeline() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    inner = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(inner)))
    yield provider, inner
    provider.shutdown()


def _sqlalchemy_error() -> Exception:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE u (email TEXT UNIQUE)"))
        conn.execute(text("INSERT INTO u VALUES (:e)"), {"e": CANARY})
        try:
            conn.execute(text("INSERT INTO u VALUES (:e)"), {"e": CANARY})
        except Exception as exc:
            return exc
    raise AssertionError("did not raise")


def test_sdk_recorded_sql_error_is_scrubbed(pipeline: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, inner = pipeline
    tracer = provider.get_tracer("app")
    with pytest.raises(Exception), tracer.start_as_current_span("checkout"):  # noqa: B017
        raise _sqlalchemy_error()
    [span] = inner.get_finished_spans()
    [event] = span.events
    attributes = dict(event.attributes or {})
    assert attributes["exception.type"] == "sqlalchemy.exc.IntegrityError"
    assert "[SQL: INSERT INTO u VALUES (?)]" in attributes["exception.message"]
    assert "UNIQUE constraint failed: u.email" in str(attributes["exception.stacktrace"])
    assert span.status.status_code is StatusCode.ERROR
    assert "IntegrityError" in str(span.status.description)
    for value in (*attributes.values(), span.status.description):
        assert CANARY not in str(value)


Pipeline = tuple[TracerProvider, InMemorySpanExporter]


def test_status_description_and_url_in_an_app_span(pipeline: Pipeline) -> None:
    provider, inner = pipeline
    description = f"GET https://u:{CANARY}@h.example/x?api-key={CANARY} failed"
    with provider.get_tracer("app").start_as_current_span("call") as span:
        span.set_status(Status(StatusCode.ERROR, description))
    [exported] = inner.get_finished_spans()
    assert exported.status.description == "GET https://REDACTED:REDACTED@h.example/x?api-key=REDACTED failed"


def test_modes_apply_to_application_exceptions(pipeline: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, inner = pipeline
    redaction.configure(resolve_settings(environ={}, exception_messages="drop"))
    with provider.get_tracer("app").start_as_current_span("x") as span:
        span.record_exception(LookupError(f"no user '{CANARY}'"))
        span.set_status(Status(StatusCode.ERROR, f"LookupError: no user '{CANARY}'"))
    [exported] = inner.get_finished_spans()
    attributes = dict(exported.events[0].attributes or {})
    assert attributes["exception.message"] == "LookupError"
    assert str(attributes["exception.stacktrace"]).rstrip().endswith("LookupError")
    assert exported.status.description == "LookupError"
    redaction.configure(resolve_settings(environ={}, exception_messages="redact"))
    inner.clear()
    with provider.get_tracer("app").start_as_current_span("x") as span:
        span.record_exception(LookupError(f"no user '{CANARY}'"))
    [exported] = inner.get_finished_spans()
    assert dict(exported.events[0].attributes or {})["exception.message"] == "no user '?'"


def test_non_error_spans_pass_through_as_the_same_objects() -> None:
    provider = TracerProvider()
    seen: list[ReadableSpan] = []

    class Keep(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            seen.extend(spans)  # type: ignore[arg-type]
            return SpanExportResult.SUCCESS

    tracer = provider.get_tracer("app")
    spans = []
    for name in ("a", "b"):
        with tracer.start_as_current_span(name, attributes={"q": f"token={CANARY}"}) as span:
            span.add_event("note", {"k": "v"})
        spans.append(span)
    exporter = ScrubbingSpanExporter(Keep())
    batch = tuple(spans)
    assert exporter.export(batch) is SpanExportResult.SUCCESS
    assert seen == list(batch) and all(a is b for a, b in zip(seen, batch, strict=True))
    assert not needs_scrub(spans[0])
    assert scrub_span(spans[0]) is spans[0]


def test_only_the_error_span_of_a_batch_is_copied() -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("ok") as ok:
        pass
    with tracer.start_as_current_span("bad") as bad:
        bad.record_exception(ValueError(f"password={CANARY}"))
    inner = InMemorySpanExporter()
    ScrubbingSpanExporter(inner).export([ok, bad])  # type: ignore[list-item]
    first, second = inner.get_finished_spans()
    assert first is ok
    assert second is not bad
    assert second.context == bad.context and second.name == "bad"
    assert dict(second.events[0].attributes or {})["exception.message"] == "password=REDACTED"


def test_shutdown_and_flush_reach_the_inner_exporter() -> None:
    inner = InMemorySpanExporter()
    exporter = ScrubbingSpanExporter(inner)
    assert exporter.force_flush(100) is True
    exporter.shutdown()
    assert inner.export([]) is SpanExportResult.FAILURE  # the in-memory exporter refuses after shutdown
