"""CLIENT spans for httpx, against a real HTTP server on 127.0.0.1 that echoes what it received."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from otelperf.testing import Capture


def _traceparent_of(span: object) -> str:
    ctx = span.context  # type: ignore[attr-defined]
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def test_sync_get_makes_one_client_span_and_propagates(otelperf_capture: Capture, echo_server: str) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with tracer.start_as_current_span("parent") as parent, httpx.Client() as client:
        line = sys._getframe().f_lineno + 1  # the call's call site
        response = client.get(f"{echo_server}/echo?page=2")
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
        "code.function.name": "test_sync_get_makes_one_client_span_and_propagates",
        "code.line.number": line,
    }
    assert span.status.status_code is StatusCode.UNSET


async def test_async_client_span_covers_the_call(otelperf_capture: Capture, echo_server: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{echo_server}/echo")
    assert response.status_code == 501  # http.server has no do_POST: a real answer all the same
    [span] = otelperf_capture.spans_named("POST")
    attrs = span.attributes or {}
    assert attrs["http.response.status_code"] == 501
    assert attrs["error.type"] == "501"
    assert span.status.status_code is StatusCode.ERROR
    assert span.end_time is not None and span.start_time is not None


async def test_async_propagates_its_own_span(otelperf_capture: Capture, echo_server: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{echo_server}/echo")
    [span] = otelperf_capture.spans_named("GET")
    assert response.json()["traceparent"] == _traceparent_of(span)


def test_credentials_and_tokens_are_redacted(otelperf_capture: Capture, echo_server: str) -> None:
    url = echo_server.replace("http://", "http://alice:s3cret@") + "/echo?token=abc&x=1"
    with httpx.Client() as client:
        response = client.get(url)
    assert response.json()["path"] == "/echo?token=abc&x=1"  # the request itself is untouched
    [span] = otelperf_capture.spans_named("GET")
    full = (span.attributes or {})["url.full"]
    assert full == echo_server.replace("http://", "http://REDACTED:REDACTED@") + "/echo?token=REDACTED&x=1"


def test_5xx_is_an_error_4xx_is_not(otelperf_capture: Capture, echo_server: str) -> None:
    with httpx.Client() as client:
        client.get(f"{echo_server}/status/503")
        client.get(f"{echo_server}/status/404")
    by_status = {(s.attributes or {})["http.response.status_code"]: s for s in otelperf_capture.spans}
    assert by_status[503].status.status_code is StatusCode.ERROR
    assert (by_status[503].attributes or {})["error.type"] == "503"
    assert by_status[404].status.status_code is StatusCode.UNSET
    assert "error.type" not in (by_status[404].attributes or {})


def test_connect_error_propagates_unchanged(otelperf_capture: Capture, closed_port: int) -> None:
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{closed_port}/x")
    [span] = otelperf_capture.spans_named("GET")
    assert span.status.status_code is StatusCode.ERROR
    attrs = span.attributes or {}
    assert attrs["error.type"] == "ConnectError"
    assert "http.response.status_code" not in attrs
    [point] = otelperf_capture.metric_points("http.client.request.duration")
    assert point.attributes["error.type"] == "ConnectError"


def test_redirects_followed_by_httpx_share_one_span(otelperf_capture: Capture, echo_server: str) -> None:
    with httpx.Client(follow_redirects=True) as client:
        response = client.get(f"{echo_server}/redirect")
    assert response.status_code == 200
    [span] = otelperf_capture.spans
    assert (span.attributes or {})["http.response.status_code"] == 200


def test_duration_metric(otelperf_capture: Capture, echo_server: str) -> None:
    with httpx.Client() as client:
        client.get(f"{echo_server}/echo")
        client.get(f"{echo_server}/echo")
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
        with httpx.Client() as client:
            response = client.get(f"{echo_server}/echo")
    finally:
        otel_context.detach(token)
    assert response.json()["traceparent"] is None
    assert otelperf_capture.spans == []


def test_uninstrument_restores_send(echo_server: str) -> None:
    from otelperf.testing import capture, stop_capture

    original = (vars(httpx.Client)["send"], vars(httpx.AsyncClient)["send"])
    cap = capture()
    assert vars(httpx.Client)["send"] is not original[0]
    stop_capture(cap)
    assert (vars(httpx.Client)["send"], vars(httpx.AsyncClient)["send"]) == original
    with httpx.Client() as client:
        assert client.get(f"{echo_server}/echo").json()["traceparent"] is None


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

    def calls(client: httpx.Client) -> list[str | None]:
        traceparents = [
            client.get(f"{echo_server}/echo?page=2").json()["traceparent"],
            client.get(f"{echo_server.replace('http://', 'http://u:p@')}/echo?token=t").json()["traceparent"],
        ]
        assert client.get(f"{echo_server}/status/503").status_code == 503
        assert client.get(f"{echo_server}/status/404").status_code == 404
        assert client.request("PURGE", f"{echo_server}/echo").status_code == 501
        with pytest.raises(httpx.ConnectError):
            client.get(f"http://127.0.0.1:{closed_port}/x")
        return traceparents

    with httpx.Client() as client:
        root_traceparents = calls(client)
        at_root = otelperf_capture.spans
        otelperf_capture.clear()
        with tracer.start_as_current_span("parent") as parent:
            parent_traceparents = calls(client)
    under_parent = [s for s in otelperf_capture.spans if s.name != "parent"]

    assert [_seen(s) for s in under_parent] == [_seen(s) for s in at_root]
    assert len(under_parent) == 6
    parent_ctx = parent.get_span_context()
    for span in under_parent:
        assert span.parent is not None and span.parent.span_id == parent_ctx.span_id
        assert span.context.trace_id == parent_ctx.trace_id and span.context.trace_flags.sampled
        assert span.start_time is not None and span.end_time is not None and span.start_time <= span.end_time
    assert parent_traceparents == [_traceparent_of(s) for s in under_parent[:2]]
    assert root_traceparents == [_traceparent_of(s) for s in at_root[:2]]
    failed = under_parent[-1]
    assert failed.status.description is not None and failed.status.description.startswith("ConnectError: ")
    [(name, event)] = _seen(failed)[-1]
    assert (name, event["exception.type"], event["exception.escaped"]) == (
        "exception",
        "httpx.ConnectError",
        "True",
    )
    # Both rounds measured under the same attributes: the /echo pair, 503, 404, PURGE, the failure.
    counts = sorted(p.count for p in otelperf_capture.metric_points("http.client.request.duration"))
    assert counts == [2, 2, 2, 2, 4]


async def test_async_span_under_a_parent_propagates_itself(
    otelperf_capture: Capture, echo_server: str
) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with tracer.start_as_current_span("parent") as parent:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{echo_server}/echo")
    [span] = otelperf_capture.spans_named("GET")
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert response.json()["traceparent"] == _traceparent_of(span)
    assert (span.attributes or {})["http.response.status_code"] == 200


def test_unsampled_parent_gets_no_span_and_passes_its_decision_on(
    otelperf_capture: Capture, echo_server: str
) -> None:
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        with httpx.Client() as client:
            traceparent = client.get(f"{echo_server}/echo").json()["traceparent"]
    finally:
        otel_context.detach(token)
    assert otelperf_capture.spans == []
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, trace_id, flags) == ("00", f"{0x1234:032x}", "00")
    assert span_id != f"{0x5678:016x}"  # the unsampled child's own id, as the SDK makes it
    [point] = otelperf_capture.metric_points("http.client.request.duration")
    assert point.count == 1  # metrics are not sampled


async def test_in_process_server_span_is_a_child_of_the_client_span(otelperf_capture: Capture) -> None:
    app = FastAPI()

    @app.get("/stock")
    def stock() -> dict[str, int]:
        return {"stock": 3}

    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with tracer.start_as_current_span("handler") as handler:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://stock.test"
        ) as c:
            assert (await c.get("/stock")).json() == {"stock": 3}
    [client_span] = [s for s in otelperf_capture.spans if s.kind is SpanKind.CLIENT]
    [server_span] = [s for s in otelperf_capture.spans if s.kind is SpanKind.SERVER]
    assert client_span.parent is not None and client_span.parent.span_id == handler.get_span_context().span_id
    assert server_span.parent is not None and server_span.parent.span_id == client_span.context.span_id
    assert server_span.context.trace_id == client_span.context.trace_id == handler.get_span_context().trace_id


def test_calls_in_a_loop_are_an_n_plus_one_with_the_loops_line_and_the_path_template(
    echo_server: str,
) -> None:
    import os

    from otelperf.testing import capture, stop_capture

    cap = capture(detectors="n_plus_one", n_plus_one_min_ms=0)
    try:
        tracer = cap.runtime.tracer
        assert tracer is not None
        with tracer.start_as_current_span("GET /basket"), httpx.Client() as client:
            for item in range(5):
                line = sys._getframe().f_lineno + 1
                client.get(f"{echo_server}/items/{item}/stock")
        (finding,) = [f for f in cap.findings if f.detector == "n_plus_one"]
        function = sys._getframe().f_code.co_name
        site = f"{os.path.relpath(__file__)}:{line} in {function}()"
        assert finding.details["call_site"] == site
        assert finding.hint == (
            f"fetch in one call (a batch endpoint for GET 127.0.0.1/items/{{id}}/stock) or concurrently:"
            f" the 5 calls at {site}"
        )
    finally:
        stop_capture(cap)
