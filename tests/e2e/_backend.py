"""Reading the real backend back: Jaeger's /api/v3 (OTLP JSON), Prometheus' /api/v1/query, the
collector's own counters, and the ``otelperf.finding`` span events the detectors write.

Everything that waits polls until a deadline (``poll``) and fails with the last answer it saw, so a
failing end-to-end test says what the backend held, not just "timeout".
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

JAEGER = "http://127.0.0.1:16686"
PROMETHEUS = "http://127.0.0.1:9090"
OTLP_HTTP = "http://127.0.0.1:4318"
COLLECTOR_METRICS = "http://127.0.0.1:8888/metrics"
JAEGER_METRICS = "http://127.0.0.1:14269/metrics"

# Loopback only: an http_proxy in the environment must not see the test's backend queries.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class StackUrls:
    jaeger: str = JAEGER
    prometheus: str = PROMETHEUS
    otlp_http: str = OTLP_HTTP


def get_json(url: str, params: dict[str, str] | None = None, timeout: float = 5.0) -> Any:
    """GET a JSON document; HTTPError (e.g. Jaeger's 404 for an unknown trace) propagates."""
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with OPENER.open(url, timeout=timeout) as response:
        return json.loads(response.read())


def poll(what: str, fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    """Call ``fetch`` until ``done(result)``; fail with the last result after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fetch()
            if done(last):
                return last
        except (OSError, urllib.error.URLError) as exc:  # HTTPError is a URLError
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not there after {timeout:g} s; last answer: {str(last)[:2000]}")
        time.sleep(0.5)


# --- Prometheus ---------------------------------------------------------------------------------------


def prometheus_result(promql: str, prometheus: str = PROMETHEUS) -> list[dict[str, Any]]:
    """The ``data.result`` of an instant query (one dict per series)."""
    result: list[dict[str, Any]] = get_json(f"{prometheus}/api/v1/query", {"query": promql})["data"]["result"]
    return result


def prometheus_value(promql: str, prometheus: str = PROMETHEUS) -> float | None:
    """The first series' value of an aggregating query (``sum(...)``), None while there is none."""
    result = prometheus_result(promql, prometheus)
    return float(result[0]["value"][1]) if result else None


# --- the collector and Jaeger have stored everything ---------------------------------------------


def _span_counters(url: str, exporter: str) -> tuple[float, float]:
    """(spans the OTLP receiver accepted, spans ``exporter`` sent) from a collector's own metrics."""
    with OPENER.open(url, timeout=2) as response:
        text = response.read().decode()
    accepted = sent = 0.0
    for line in text.splitlines():
        if line.startswith("otelcol_receiver_accepted_spans_total{"):
            accepted += float(line.rsplit(" ", 1)[1])
        elif line.startswith("otelcol_exporter_sent_spans_total{") and f'exporter="{exporter}"' in line:
            sent += float(line.rsplit(" ", 1)[1])
    return accepted, sent


def wait_spans_stored(timeout: float = 20.0) -> None:
    """Wait until every span the collector accepted went to Jaeger and Jaeger stored all it got.

    Reading a trace as soon as it shows up could catch it half-written (spans of one trace can
    travel in different batches); after this, what Jaeger answers is all there is.
    """

    def counters() -> tuple[float, float, float, float]:
        return (
            *_span_counters(COLLECTOR_METRICS, "otlp_grpc/jaeger"),
            *_span_counters(JAEGER_METRICS, "jaeger_storage_exporter"),
        )

    poll(
        "collector accepted == sent to Jaeger == stored by Jaeger",
        counters,
        lambda c: c[0] == c[1] == c[2] == c[3],
        timeout,
    )


# --- Jaeger's OTLP JSON ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JSpan:
    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    parent_span_id: str  # "" for none
    name: str
    kind: int  # OTLP enum: 2 SERVER, 3 CLIENT
    attributes: dict[str, Any]
    resource: dict[str, Any]


def hex_id(value: str, size: int) -> str:
    """OTLP JSON ids: Jaeger's api_v3 writes hex; protobuf's canonical JSON would be base64."""
    if not value:
        return ""
    if len(value) == size * 2 and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower()
    return base64.b64decode(value).hex()


def any_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])  # proto3 JSON writes int64 as a string
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    return value


def attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: any_value(a.get("value", {})) for a in items or []}


def spans_of(document: dict[str, Any]) -> list[JSpan]:
    out = []
    for resource_spans in document.get("result", {}).get("resourceSpans", []):
        resource = attributes(resource_spans.get("resource", {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                out.append(
                    JSpan(
                        trace_id=hex_id(span["traceId"], 16),
                        span_id=hex_id(span["spanId"], 8),
                        parent_span_id=hex_id(span.get("parentSpanId", ""), 8),
                        name=span["name"],
                        kind=int(span.get("kind", 0)),
                        attributes=attributes(span.get("attributes")),
                        resource=resource,
                    )
                )
    return out


def span_events(document: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(raw span, raw event) for every event of every span in a Jaeger OTLP JSON document."""
    for resource_spans in document["result"]["resourceSpans"]:
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for event in span.get("events", []):
                    yield span, event


def jaeger_trace(trace_id: str, timeout: float = 20.0, min_spans: int = 1) -> list[JSpan]:
    """The trace's spans from /api/v3/traces/<id>, once at least ``min_spans`` are there."""
    document = poll(
        f"trace {trace_id} in Jaeger",
        lambda: get_json(f"{JAEGER}/api/v3/traces/{trace_id}"),
        lambda doc: len(spans_of(doc)) >= min_spans,
        timeout,
    )
    return spans_of(document)


def rfc3339(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


def jaeger_search(service: str, start: float, end: float) -> list[JSpan]:
    """Every span of every trace of ``service`` started in [start, end] (Jaeger api_v3 FindTraces)."""
    try:
        document = get_json(
            f"{JAEGER}/api/v3/traces",
            {
                "query.service_name": service,
                "query.start_time_min": rfc3339(start - 1),
                "query.start_time_max": rfc3339(end + 1),
                "query.num_traces": "1000",
            },
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # "No traces found"
            return []
        raise
    return spans_of(document)


# --- the detectors' findings on a trace --------------------------------------------------------------


@dataclass(frozen=True)
class FindingEvent:
    span: JSpan  # the span the finding is shown on
    attributes: dict[str, Any]

    @property
    def detector(self) -> str:
        return str(self.attributes["otelperf.finding.detector"])


def trace_with_findings(trace_id: str) -> tuple[list[JSpan], list[FindingEvent]]:
    """The trace's spans and its ``otelperf.finding`` events (JSpan itself carries no events)."""
    spans = {s.span_id: s for s in jaeger_trace(trace_id)}
    document = get_json(f"{JAEGER}/api/v3/traces/{trace_id}")
    assert len(spans_of(document)) == len(spans)
    findings = [
        FindingEvent(spans[hex_id(span["spanId"], 8)], attributes(event.get("attributes")))
        for span, event in span_events(document)
        if event["name"] == "otelperf.finding"
    ]
    return list(spans.values()), findings


def server_root(spans: list[JSpan], parent_span_id: str) -> JSpan:
    """The SERVER span continuing the traceparent whose span id was ``parent_span_id``."""
    (root,) = [s for s in spans if s.parent_span_id == parent_span_id]
    assert root.kind == 2, root
    return root
