"""Read one run's per-route numbers from Prometheus and Jaeger.

Latency, throughput and errors come from the service's own ``http.server.request.duration``
histogram in Prometheus (what the server measured, without the load generator's own scheduling
noise; every request, not a sample). Queries per request come from Jaeger traces: a DB span carries
no ``http.route``, so spanmetrics can only say "queries per request" for the whole service; in a
trace, each DB span is counted under the SERVER span it ran in, so the number is per route (e.g. the
N+1 list shows 21, its eager twin 2). Traces are a sample (``max_traces``); the count per trace is
exact. Top fingerprints come from the detectors' ``otelperf_findings_time_milliseconds_total``.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from otelperf import _names
from otelperf.backends import (
    JAEGER_URL,
    PROMETHEUS_URL,
    BackendError,
    Jaeger,
    Prometheus,
    PrometheusQueryError,
    Sample,
    Span,
    SpanKind,
)

ROUTE_LABELS = "http_route, http_request_method"
DURATION = "http_server_request_duration_seconds"


class CollectError(RuntimeError):
    """A backend could not be read, or Prometheus refused a query."""


@dataclass(frozen=True)
class Backends:
    prometheus: str = PROMETHEUS_URL
    jaeger: str = JAEGER_URL
    timeout: float = 10.0


def query(backends: Backends, promql: str, at: float) -> list[Sample]:
    """An instant PromQL query evaluated at unix time ``at``."""
    try:
        return Prometheus(backends.prometheus, backends.timeout).query(promql, at)
    except BackendError as exc:
        raise CollectError(f"cannot read Prometheus: {exc}") from exc
    except PrometheusQueryError as exc:
        raise CollectError(f"Prometheus refused {promql!r}: {exc}") from exc


def growth(series: str, range_s: int, by: str) -> str:
    """How much a counter grew in the last ``range_s`` seconds, exactly, also for series born inside.

    ``increase()`` extrapolates, and reads 0 for a series whose first scrape already holds its final
    value (a service started for the run): the value now minus the value a range ago, or the whole
    value for series younger than the range.
    """
    window = f"{range_s}s"
    return (
        f"sum by ({by}) ((last_over_time({series}[{window}]) - {series} offset {window})"
        f" or last_over_time({series}[{window}]))"
    )


def _route_key(metric: Mapping[str, Any]) -> str | None:
    route, method = metric.get("http_route", ""), metric.get("http_request_method", "")
    return f"{method} {route}" if route and method else None


def _by_route(rows: Iterable[Sample]) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in rows:
        key = _route_key(row.labels)
        if key is not None and not math.isnan(row.value):
            out[key] = out.get(key, 0.0) + row.value
    return out


@dataclass(frozen=True)
class ServerNumbers:
    requests: dict[str, float]
    errors: dict[str, float]
    quantiles_ms: dict[float, dict[str, float]]  # {0.95: {route: ms}}


def server_numbers(backends: Backends, service: str, start: float, at: float) -> ServerNumbers:
    """Per route request and 5xx counts and p50/p95/p99 for requests of ``service`` since ``start``."""
    range_s = max(1, math.ceil(at - start))
    job = f'job="{service}"'
    requests = _by_route(query(backends, growth(f"{DURATION}_count{{{job}}}", range_s, ROUTE_LABELS), at))
    errors_q = growth(f'{DURATION}_count{{{job}, http_response_status_code=~"5.."}}', range_s, ROUTE_LABELS)
    errors = _by_route(query(backends, errors_q, at))
    quantiles: dict[float, dict[str, float]] = {}
    buckets = growth(f"{DURATION}_bucket{{{job}}}", range_s, f"le, {ROUTE_LABELS}")
    for q in (0.5, 0.95, 0.99):
        seconds = _by_route(query(backends, f"histogram_quantile({q}, {buckets})", at))
        quantiles[q] = {route: s * 1000 for route, s in seconds.items()}
    return ServerNumbers(requests, errors, quantiles)


def wait_for_requests(
    backends: Backends,
    service: str,
    start: float,
    expected: int,
    timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> ServerNumbers:
    """Poll until Prometheus holds at least ``expected`` requests of the run (metric export and
    scrape intervals lag the run by seconds); after ``timeout``, what is there."""
    deadline = time.monotonic() + timeout
    while True:
        numbers = server_numbers(backends, service, start, time.time())
        if sum(numbers.requests.values()) >= expected or time.monotonic() >= deadline:
            return numbers
        sleep(1.0)


# --- Jaeger: DB spans per SERVER span ---------------------------------------------------------------


def queries_per_request(
    backends: Backends, service: str, start: float, end: float, max_traces: int = 300
) -> tuple[dict[str, float], int]:
    """``({route: mean DB spans per request}, traces read)`` from a Jaeger trace search."""
    jaeger = Jaeger(backends.jaeger, backends.timeout * 3)
    try:
        spans = jaeger.search_spans(service, start=start, end=end, limit=max_traces)
    except BackendError as exc:
        raise CollectError(f"cannot read Jaeger: {exc}") from exc
    return count_queries(spans)


def count_queries(spans: Iterable[Span]) -> tuple[dict[str, float], int]:
    """Mean DB spans per SERVER span, per route, from the spans of some traces.

    Each DB span counts for its nearest SERVER ancestor, so a request that calls the same service
    (``/inventory/{id}`` -> ``/internal/stock/{id}``) does not get the inner request's queries.
    """
    by_key = {(s.trace_id, s.span_id): s for s in spans}
    traces = {trace_id for trace_id, _ in by_key}
    queries: dict[tuple[str, str], int] = defaultdict(int)
    for span in by_key.values():
        if span.attributes.get(_names.COMPONENT) != _names.COMPONENT_DB:
            continue
        parent = by_key.get((span.trace_id, span.parent_span_id))
        while parent is not None and parent.kind != SpanKind.SERVER:
            parent = by_key.get((parent.trace_id, parent.parent_span_id))
        if parent is not None:
            queries[(parent.trace_id, parent.span_id)] += 1
    per_route: dict[str, list[int]] = defaultdict(list)
    for key, span in by_key.items():
        if span.kind != SpanKind.SERVER:
            continue
        route = _route_key(
            {
                "http_route": span.attributes.get(_names.HTTP_ROUTE) or "",
                "http_request_method": span.attributes.get(_names.HTTP_REQUEST_METHOD) or "",
            }
        )
        if route is not None:
            per_route[route].append(queries.get(key, 0))
    return {route: sum(counts) / len(counts) for route, counts in per_route.items()}, len(traces)


# --- findings: the fingerprints that cost the most time -------------------------------------------


def top_fingerprints(
    backends: Backends, service: str, start: float, at: float, limit: int = 10
) -> list[dict[str, Any]]:
    range_s = max(1, math.ceil(at - start))
    labels = "detector, fingerprint, statement"
    select = f'{{job="{service}"}}'
    times = query(backends, growth(f"otelperf_findings_time_milliseconds_total{select}", range_s, labels), at)
    counts = query(backends, growth(f"otelperf_findings_total{select}", range_s, labels), at)
    count_of = {tuple(sorted(r.labels.items())): r.value for r in counts}
    rows: list[dict[str, Any]] = []
    for row in times:
        total_ms = row.value
        if not total_ms > 0:
            continue
        metric = row.labels
        rows.append(
            {
                "detector": metric.get("detector", ""),
                "fingerprint": metric.get("fingerprint", ""),
                "statement": metric.get("statement", "")[:300],
                "total_ms": total_ms,
                "count": count_of.get(tuple(sorted(metric.items())), 0.0),
            }
        )
    rows.sort(key=lambda r: (-r["total_ms"], r["fingerprint"]))
    return rows[:limit]


# --- gated findings: every N+1 and slow-query fingerprint of the window ----------------------------

GATED_DETECTORS = ("n_plus_one", "slow_query")
MAX_GATED = 500  # a bound on the file: one row per (detector, route, fingerprint)


def gated_findings(backends: Backends, service: str, start: float, at: float) -> list[dict[str, str]]:
    """Every N+1 and slow-query (detector, route, fingerprint) that grew in [start, at], expected
    ones left out: a baseline compare fails on one the baseline did not have."""
    range_s = max(1, math.ceil(at - start))
    detectors = "|".join(GATED_DETECTORS)
    select = f'{{job="{service}",detector=~"{detectors}",expected!="true"}}'
    labels = "detector, route, fingerprint, statement"
    rows = query(backends, growth(f"otelperf_findings_total{select}", range_s, labels), at)
    found = {
        (
            r.labels.get("detector", ""),
            r.labels.get("route", ""),
            r.labels.get("fingerprint", ""),
        ): r.labels.get("statement", "")[:300]
        for r in rows
        if r.value > 0
    }
    return [
        {"detector": d, "route": route, "fingerprint": fp, "statement": statement}
        for (d, route, fp), statement in sorted(found.items())[:MAX_GATED]
    ]
