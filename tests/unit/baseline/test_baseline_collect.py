"""Queries per request from a trace: each DB span counts for its nearest SERVER span."""

from __future__ import annotations

from typing import Any

from otelperf.backends import Span, SpanKind
from otelperf.baseline.collect import count_queries, growth


def span(trace: str, span_id: str, parent: str, kind: int, **attributes: Any) -> Span:
    return Span(trace, span_id, parent, "span", SpanKind(kind), "shop", 0, 1, attributes)


def server(trace: str, span_id: str, parent: str, route: str) -> Span:
    return span(trace, span_id, parent, 2, **{"http.route": route, "http.request.method": "GET"})


def db(trace: str, span_id: str, parent: str) -> Span:
    return span(trace, span_id, parent, 3, **{"otelperf.component": "db"})


def test_db_spans_count_for_their_nearest_server_span() -> None:
    spans = [
        # /orders: 1 + 2 queries, one of them under an internal span
        server("t1", "s1", "", "/orders"),
        db("t1", "d1", "s1"),
        span("t1", "i1", "s1", 1),
        db("t1", "d2", "i1"),
        db("t1", "d3", "i1"),
        # /inventory calls /internal/stock over HTTP: the stock query is the inner request's
        server("t2", "s2", "", "/inventory/{product_id}"),
        span("t2", "c2", "s2", 3, **{"otelperf.component": "http"}),
        server("t2", "s3", "c2", "/internal/stock/{product_id}"),
        db("t2", "d4", "s3"),
        server("t3", "s4", "", "/orders"),
        db("t3", "d5", "s4"),
    ]
    per_route, traces = count_queries(spans)
    assert traces == 3
    assert per_route == {
        "GET /orders": 2.0,  # (3 + 1) / 2
        "GET /inventory/{product_id}": 0.0,
        "GET /internal/stock/{product_id}": 1.0,
    }


def test_growth_counts_series_born_inside_the_window() -> None:
    promql = growth('m_count{job="shop"}', 42, "http_route")
    assert promql == (
        'sum by (http_route) ((last_over_time(m_count{job="shop"}[42s]) - m_count{job="shop"} offset 42s)'
        ' or last_over_time(m_count{job="shop"}[42s]))'
    )
