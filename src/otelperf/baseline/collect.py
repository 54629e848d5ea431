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

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from otelperf import _names

# Loopback backends: an http_proxy in the environment must not see these queries.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ROUTE_LABELS = "http_route, http_request_method"
DURATION = "http_server_request_duration_seconds"


class CollectError(RuntimeError):
    """A backend could not be read."""


@dataclass(frozen=True)
class Backends:
    prometheus: str = "http://127.0.0.1:9090"
    jaeger: str = "http://127.0.0.1:16686"
    timeout: float = 10.0


def _get_json(url: str, params: dict[str, str], timeout: float) -> Any:
    full = url + "?" + urllib.parse.urlencode(params)
    try:
        with _OPENER.open(full, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError:
        raise
    except (OSError, ValueError) as exc:
        raise CollectError(f"cannot read {url}: {exc}") from exc


def query(backends: Backends, promql: str, at: float) -> list[dict[str, Any]]:
    """An instant PromQL query evaluated at unix time ``at``."""
    url = backends.prometheus.rstrip("/") + "/api/v1/query"
    try:
        body = _get_json(url, {"query": promql, "time": f"{at:.3f}"}, backends.timeout)
    except urllib.error.HTTPError as exc:
        raise CollectError(f"Prometheus refused {promql!r}: {exc.read()[:300]!r}") from exc
    if body.get("status") != "success":
        raise CollectError(f"Prometheus answered {body.get('status')}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


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


def _route_key(metric: dict[str, str]) -> str | None:
    route, method = metric.get("http_route", ""), metric.get("http_request_method", "")
    return f"{method} {route}" if route and method else None


def _by_route(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in rows:
        key = _route_key(row["metric"])
        value = float(row["value"][1])
        if key is not None and not math.isnan(value):
            out[key] = out.get(key, 0.0) + value
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


def _attr(value: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    return None


def _rfc3339(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


def queries_per_request(
    backends: Backends, service: str, start: float, end: float, max_traces: int = 300
) -> tuple[dict[str, float], int]:
    """``({route: mean DB spans per request}, traces read)`` from Jaeger's api_v3 trace search."""
    params = {
        "query.service_name": service,
        "query.start_time_min": _rfc3339(start - 1),
        "query.start_time_max": _rfc3339(end + 1),
        "query.num_traces": str(max_traces),
    }
    try:
        document = _get_json(backends.jaeger.rstrip("/") + "/api/v3/traces", params, backends.timeout * 3)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # "No traces found"
            return {}, 0
        raise CollectError(f"Jaeger answered {exc.code}: {exc.read()[:300]!r}") from exc
    return count_queries(document)


def count_queries(document: dict[str, Any]) -> tuple[dict[str, float], int]:
    """Mean DB spans per SERVER span, per route, from an OTLP-JSON trace document.

    Each DB span counts for its nearest SERVER ancestor, so a request that calls the same service
    (``/inventory/{id}`` -> ``/internal/stock/{id}``) does not get the inner request's queries.
    """
    spans: dict[str, dict[str, Any]] = {}
    traces: set[str] = set()
    for resource_spans in document.get("result", {}).get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                attributes = {a["key"]: _attr(a.get("value", {})) for a in span.get("attributes", [])}
                key = span["traceId"] + "/" + span["spanId"]
                parent = span.get("parentSpanId") or ""
                spans[key] = {
                    "parent": span["traceId"] + "/" + parent if parent else "",
                    "server": int(span.get("kind", 0)) == 2,
                    "attributes": attributes,
                }
                traces.add(span["traceId"])
    queries: dict[str, int] = defaultdict(int)
    for span in spans.values():
        if span["attributes"].get(_names.COMPONENT) != _names.COMPONENT_DB:
            continue
        parent = span["parent"]
        while parent and parent in spans and not spans[parent]["server"]:
            parent = spans[parent]["parent"]
        if parent in spans:
            queries[parent] += 1
    per_route: dict[str, list[int]] = defaultdict(list)
    for key, span in spans.items():
        if not span["server"]:
            continue
        route = _route_key(
            {
                "http_route": span["attributes"].get(_names.HTTP_ROUTE) or "",
                "http_request_method": span["attributes"].get(_names.HTTP_REQUEST_METHOD) or "",
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
    count_of = {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in counts}
    rows = []
    for row in times:
        total_ms = float(row["value"][1])
        if not total_ms > 0:
            continue
        metric = row["metric"]
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
