"""Reading the real backend back, through :mod:`otelperf.backends`: Jaeger's api_v3 as typed spans,
Prometheus' queries, the collector's own counters, and the ``otelperf.finding`` span events the
detectors write.

Everything that waits polls until a deadline (``poll``) and fails with the last answer it saw, so a
failing end-to-end test says what the backend held, not just "timeout".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from otelperf.backends import JAEGER_URL, PROMETHEUS_URL, Jaeger, Prometheus, Sample, Span, SpanKind
from otelperf.backends.exposition import scrape, sum_family
from otelperf.backends.jaeger import iter_events

JAEGER = JAEGER_URL
PROMETHEUS = PROMETHEUS_URL
OTLP_HTTP = "http://127.0.0.1:4318"
COLLECTOR_METRICS = "http://127.0.0.1:8888/metrics"
JAEGER_METRICS = "http://127.0.0.1:14269/metrics"


@dataclass(frozen=True)
class StackUrls:
    jaeger: str = JAEGER
    prometheus: str = PROMETHEUS
    otlp_http: str = OTLP_HTTP


def poll(what: str, fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    """Call ``fetch`` until ``done(result)``; fail with the last result after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fetch()
            if done(last):
                return last
        except OSError as exc:  # the backends' BackendError is an OSError
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not there after {timeout:g} s; last answer: {str(last)[:2000]}")
        time.sleep(0.5)


# --- Prometheus ---------------------------------------------------------------------------------------


def prometheus_result(promql: str, prometheus: str = PROMETHEUS) -> list[Sample]:
    """An instant query's series."""
    return Prometheus(prometheus, timeout=5.0).query(promql)


def prometheus_value(promql: str, prometheus: str = PROMETHEUS) -> float | None:
    """The first series' value of an aggregating query (``sum(...)``), None while there is none."""
    return Prometheus(prometheus, timeout=5.0).value(promql)


# --- the collector and Jaeger have stored everything ---------------------------------------------


def _span_counters(url: str, exporter: str) -> tuple[float, float]:
    """(spans the OTLP receiver accepted, spans ``exporter`` sent) from a collector's own metrics."""
    text = scrape(url)
    accepted = sum_family(text, "otelcol_receiver_accepted_spans") or 0.0
    sent = sum_family(text, "otelcol_exporter_sent_spans", {"exporter": exporter}) or 0.0
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


# --- Jaeger ------------------------------------------------------------------------------------------


def jaeger_trace(trace_id: str, timeout: float = 20.0, min_spans: int = 1) -> list[Span]:
    """The trace's spans, once at least ``min_spans`` are there."""
    jaeger = Jaeger(JAEGER, timeout=5.0)
    spans: list[Span] = poll(
        f"trace {trace_id} in Jaeger",
        lambda: list(jaeger.trace(trace_id).spans),
        lambda spans: len(spans) >= min_spans,
        timeout,
    )
    return spans


def jaeger_search(service: str, start: float, end: float) -> list[Span]:
    """Every span of every trace of ``service`` started in [start, end]."""
    return Jaeger(JAEGER, timeout=5.0).search_spans(service, start=start, end=end, limit=1000)


# --- the detectors' findings on a trace --------------------------------------------------------------


@dataclass(frozen=True)
class FindingEvent:
    span: Span  # the span the finding is shown on
    attributes: dict[str, Any]

    @property
    def detector(self) -> str:
        return str(self.attributes["otelperf.finding.detector"])


def trace_with_findings(trace_id: str) -> tuple[list[Span], list[FindingEvent]]:
    """The trace's spans and its ``otelperf.finding`` events."""
    spans = jaeger_trace(trace_id)
    findings = [
        FindingEvent(span, dict(event.attributes)) for span, event in iter_events(spans, "otelperf.finding")
    ]
    return spans, findings


def server_root(spans: list[Span], parent_span_id: str) -> Span:
    """The SERVER span continuing the traceparent whose span id was ``parent_span_id``."""
    (root,) = [s for s in spans if s.parent_span_id == parent_span_id]
    assert root.kind == SpanKind.SERVER, root
    return root
