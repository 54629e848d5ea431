"""Jaeger api_v3: OTLP JSON (hex ids as Jaeger writes them, base64 as protobuf's JSON would) to
typed spans, searches, and a search that found nothing."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from tests.unit.backends.fake_backend import fake_backend, recorded

from otelperf.backends import BackendBadAnswer, BackendHTTPError, Jaeger, SpanKind, parse_spans
from otelperf.backends.jaeger import hex_id, iter_events

TRACE_ID = "132ebb3be8b00d0a92e73e06d6513d54"
SERVER_ID, CLIENT_ID = "2adc412c3808f12c", "ad4a2141f93e65d4"
NOT_FOUND = {"error": {"httpCode": 404, "message": "No traces found"}}


def base64_document(document: dict[str, Any]) -> dict[str, Any]:
    """The same trace as protobuf's canonical JSON writes it: base64 ids, enum names."""
    out = copy.deepcopy(document)
    for resource_spans in out["result"]["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
                span["kind"] = {2: "SPAN_KIND_SERVER", 3: "SPAN_KIND_CLIENT"}[span["kind"]]
                if "code" in span.get("status", {}):
                    span["status"]["code"] = "STATUS_CODE_ERROR"
    return out


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_a_trace_becomes_typed_spans(encoding: str) -> None:
    document = recorded("jaeger_trace.json")
    if encoding == "base64":
        document = base64_document(document)
        assert document["result"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] != TRACE_ID
    with fake_backend({f"/api/v3/traces/{TRACE_ID}": (200, document)}) as backend:
        trace = Jaeger(backend.url).trace(TRACE_ID)
    assert trace.trace_id == TRACE_ID
    server, client = trace.root, trace.by_id()[CLIENT_ID]
    assert (server.span_id, server.parent_span_id, server.name) == (SERVER_ID, "", "GET /orders")
    assert server.kind is SpanKind.SERVER and int(server.kind) == 2
    assert server.service == "rec-shape" and server.scope == "rec"
    assert server.attributes == {
        "b": True,
        "f": 1.5,
        "http.request.method": "GET",
        "http.route": "/orders",
        "l": ["a", "b"],
        "n": 3,
    }
    assert server.start_ns == 1796207347738856010 and server.end_ns == 1796207347743574391
    assert server.duration_ms == pytest.approx(4.718381)
    assert server.status_code == "UNSET"
    assert trace.children(server) == [client]
    assert (client.trace_id, client.parent_span_id, client.kind) == (TRACE_ID, SERVER_ID, SpanKind.CLIENT)
    assert (client.status_code, client.status_message) == ("ERROR", "boom")
    [event] = client.events_named("otelperf.finding")
    assert event.time_ns == 1796207347738938373
    assert event.attributes == {"otelperf.finding.count": 12, "otelperf.finding.detector": "n_plus_one"}
    assert list(iter_events(trace.spans, "otelperf.finding")) == [(client, event)]


def test_search_asks_for_the_service_operation_and_window_and_groups_by_trace() -> None:
    document = recorded("jaeger_trace.json")
    other = copy.deepcopy(document["result"]["resourceSpans"][1])
    other["scopeSpans"][0]["spans"][0]["traceId"] = "0" * 31 + "1"
    document["result"]["resourceSpans"].append(other)
    with fake_backend({"/api/v3/traces": (200, document)}) as backend:
        traces = Jaeger(backend.url).search(
            "shop", operation="GET /orders", start=1796207340.5, end=1796207350.0, limit=20
        )
    assert [(t.trace_id, len(t.spans)) for t in traces] == [(TRACE_ID, 2), ("0" * 31 + "1", 1)]
    assert backend.asked == [
        (
            "/api/v3/traces",
            {
                "query.service_name": "shop",
                "query.operation_name": "GET /orders",
                "query.start_time_min": "2026-12-02T10:28:59Z",
                "query.start_time_max": "2026-12-02T10:29:11Z",
                "query.num_traces": "20",
            },
        )
    ]


def test_nothing_found_is_no_traces_not_an_error() -> None:
    unknown = "f" * 32
    with fake_backend(
        {"/api/v3/traces": (404, NOT_FOUND), f"/api/v3/traces/{unknown}": (404, NOT_FOUND)}
    ) as b:
        jaeger = Jaeger(b.url)
        assert jaeger.search("nobody", start=0, end=1) == []
        assert jaeger.trace(unknown).spans == ()
        assert jaeger.search_text("nobody", start=0, end=1) == ""
        assert jaeger.trace_text(unknown) == ""


def test_raw_text_is_what_jaeger_sent() -> None:
    with fake_backend({f"/api/v3/traces/{TRACE_ID}": (200, '{"result": {"resourceSpans": []}}')}) as b:
        assert Jaeger(b.url).trace_text(TRACE_ID) == '{"result": {"resourceSpans": []}}'


def test_a_server_error_says_what_jaeger_said() -> None:
    body = {
        "error": {"httpCode": 500, "message": "search depth must be greater than 0 and less than max traces"}
    }
    with (
        fake_backend({"/api/v3/traces": (500, body)}) as backend,
        pytest.raises(BackendHTTPError, match=r"answered HTTP 500: .*search depth must be greater than 0"),
    ):
        Jaeger(backend.url).search("shop", start=0, end=1)


def test_a_malformed_document_is_a_bad_answer() -> None:
    spans = [{"spanId": SERVER_ID, "name": "no trace id"}]
    document = {"result": {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}}
    with (
        fake_backend({"/api/v3/traces": (200, document)}) as backend,
        pytest.raises(BackendBadAnswer, match=r"/api/v3/traces: malformed OTLP JSON span: KeyError"),
    ):
        Jaeger(backend.url).search("shop", start=0, end=1)


def test_ids_in_hex_or_base64_and_nothing_else() -> None:
    assert hex_id("5B8EFFF798038103D269B633813FC60C", 16) == "5b8efff798038103d269b633813fc60c"
    assert hex_id(base64.b64encode(bytes.fromhex("1234567890abcdef")).decode(), 8) == "1234567890abcdef"
    assert hex_id("", 8) == ""
    with pytest.raises(ValueError, match="not a 8-byte id"):
        hex_id("not an id!", 8)
    with pytest.raises(ValueError, match="not a 16-byte id"):
        hex_id("1234567890abcdef", 16)  # 8 bytes of hex where 16 are due


def test_bare_otlp_traces_data_parses_too() -> None:
    document = recorded("jaeger_trace.json")["result"]
    assert {s.span_id for s in parse_spans(document)} == {SERVER_ID, CLIENT_ID}


def test_services() -> None:
    with fake_backend({"/api/v3/services": (200, {"services": ["shop", "locust"]})}) as backend:
        assert Jaeger(backend.url).services() == ["locust", "shop"]
