"""CLIENT spans for requests, against a real HTTP server on 127.0.0.1 that echoes what it received."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import requests
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from otelperf.testing import Capture


def _traceparent_of(span: object) -> str:
    ctx = span.context  # type: ignore[attr-defined]
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def test_get_makes_one_client_span_and_propagates(otelperf_capture: Capture, echo_server: str) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with tracer.start_as_current_span("parent") as parent:
        line = sys._getframe().f_lineno + 1  # the call's call site
        response = requests.get(f"{echo_server}/echo?page=2", timeout=5)
    [span] = otelperf_capture.spans_named("GET")
    assert span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert response.json()["traceparent"] == _traceparent_of(span)
    port = int(echo_server.rsplit(":", 1)[1])
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": port,
        "url.scheme": "http",
        "url.full": f"{echo_server}/echo?page=2",
        "otelperf.component": "http",
        "http.response.status_code": 200,
        "code.file.path": __file__,
        "code.function.name": "test_get_makes_one_client_span_and_propagates",
        "code.line.number": line,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_credentials_and_tokens_are_redacted(otelperf_capture: Capture, echo_server: str) -> None:
    url = echo_server.replace("http://", "http://alice:s3cret@") + "/echo?token=abc&x=1"
    response = requests.get(url, timeout=5)
    assert response.json()["path"] == "/echo?token=abc&x=1"  # the request itself is untouched
    [span] = otelperf_capture.spans_named("GET")
    full = (span.attributes or {})["url.full"]
    assert full == echo_server.replace("http://", "http://REDACTED:REDACTED@") + "/echo?token=REDACTED&x=1"


def test_5xx_is_an_error_4xx_is_not(otelperf_capture: Capture, echo_server: str) -> None:
    with requests.Session() as session:
        session.get(f"{echo_server}/status/503", timeout=5)
        session.get(f"{echo_server}/status/404", timeout=5)
    by_status = {(s.attributes or {})["http.response.status_code"]: s for s in otelperf_capture.spans}
    assert by_status[503].status.status_code is StatusCode.ERROR
    assert (by_status[503].attributes or {})["error.type"] == "503"
    assert by_status[404].status.status_code is StatusCode.UNSET
    assert "error.type" not in (by_status[404].attributes or {})


def test_connect_error_propagates_unchanged(otelperf_capture: Capture, closed_port: int) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{closed_port}/x", timeout=5)
    [span] = otelperf_capture.spans_named("GET")
    assert span.status.status_code is StatusCode.ERROR
    attrs = span.attributes or {}
    assert attrs["error.type"] == "ConnectionError"
    assert "http.response.status_code" not in attrs
    [point] = otelperf_capture.metric_points("http.client.request.duration")
    assert point.attributes["error.type"] == "ConnectionError"


def test_redirect_hops_share_one_span(otelperf_capture: Capture, echo_server: str) -> None:
    response = requests.get(f"{echo_server}/redirect", timeout=5)
    assert response.status_code == 200
    assert len(response.history) == 1
    [span] = otelperf_capture.spans
    assert (span.attributes or {})["http.response.status_code"] == 200
    assert response.json()["traceparent"] == _traceparent_of(span)


def test_duration_metric(otelperf_capture: Capture, echo_server: str) -> None:
    with requests.Session() as session:
        session.get(f"{echo_server}/echo", timeout=5)
        session.get(f"{echo_server}/echo", timeout=5)
    [point] = otelperf_capture.metric_points("http.client.request.duration")
    assert point.count == 2
    assert dict(point.attributes) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": int(echo_server.rsplit(":", 1)[1]),
        "url.scheme": "http",
        "http.response.status_code": 200,
    }


def test_suppressed_http_makes_no_span_and_injects_nothing(
    otelperf_capture: Capture, echo_server: str
) -> None:
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        response = requests.get(f"{echo_server}/echo", timeout=5)
    finally:
        otel_context.detach(token)
    assert response.json()["traceparent"] is None
    assert otelperf_capture.spans == []


def test_uninstrument_restores_send(echo_server: str) -> None:
    from otelperf.testing import capture, stop_capture

    original = vars(requests.Session)["send"]
    cap = capture()
    assert vars(requests.Session)["send"] is not original
    stop_capture(cap)
    assert vars(requests.Session)["send"] is original
    assert requests.get(f"{echo_server}/echo", timeout=5).json()["traceparent"] is None


# --- under a parent span (the leaf-span path) and at the root (the API path) --------------------------


def _seen(span: ReadableSpan) -> tuple[Any, ...]:
    """What a user sees of a span, except ids, times and the stack trace's line numbers."""
    events = [
        (e.name, {k: v for k, v in (e.attributes or {}).items() if k != "exception.stacktrace"})
        for e in span.events
    ]
    stacktraces = [str((e.attributes or {}).get("exception.stacktrace", "")) for e in span.events]
    assert all(t.startswith("Traceback (most recent call last)") for t in stacktraces)
    return (
        span.name,
        span.kind,
        dict(span.attributes or {}),
        span.status.status_code,
        span.status.description,
        events,
    )


def test_a_span_under_a_parent_is_the_span_at_the_root(
    otelperf_capture: Capture, echo_server: str, closed_port: int
) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None

    def calls(session: requests.Session) -> list[str | None]:
        traceparents = [
            session.get(f"{echo_server}/echo?page=2", timeout=5).json()["traceparent"],
            session.get(f"{echo_server}/redirect", timeout=5).json()["traceparent"],
        ]
        assert session.get(f"{echo_server}/status/503", timeout=5).status_code == 503
        assert session.request("purge", f"{echo_server}/echo", timeout=5).status_code == 501
        with pytest.raises(requests.ConnectionError):
            session.get(f"http://127.0.0.1:{closed_port}/x", timeout=5)
        return traceparents

    with requests.Session() as session:
        root_traceparents = calls(session)
        at_root = otelperf_capture.spans
        otelperf_capture.clear()
        with tracer.start_as_current_span("parent") as parent:
            parent_traceparents = calls(session)
    under_parent = [s for s in otelperf_capture.spans if s.name != "parent"]

    assert len(under_parent) == 5  # the redirect's second hop is part of its call's span
    assert [_seen(s) for s in under_parent] == [_seen(s) for s in at_root]
    parent_ctx = parent.get_span_context()
    for span in under_parent:
        assert span.parent is not None and span.parent.span_id == parent_ctx.span_id
        assert span.context.trace_id == parent_ctx.trace_id
    assert parent_traceparents == [_traceparent_of(s) for s in under_parent[:2]]
    assert root_traceparents == [_traceparent_of(s) for s in at_root[:2]]
    assert (under_parent[3].attributes or {})["http.request.method_original"] == "PURGE"
    failed = under_parent[-1]
    assert failed.status.description is not None and failed.status.description.startswith("ConnectionError: ")
    [(name, event)] = _seen(failed)[-1]
    assert (name, event["exception.type"]) == ("exception", "requests.exceptions.ConnectionError")


def test_unsampled_parent_gets_no_span_and_passes_its_decision_on(
    otelperf_capture: Capture, echo_server: str
) -> None:
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        traceparent = requests.get(f"{echo_server}/echo", timeout=5).json()["traceparent"]
    finally:
        otel_context.detach(token)
    assert otelperf_capture.spans == []
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, trace_id, flags) == ("00", f"{0x1234:032x}", "00")
    assert span_id != f"{0x5678:016x}"
    [point] = otelperf_capture.metric_points("http.client.request.duration")
    assert point.count == 1
