"""Step 5b: the latency panels' PromQL, and their values now, from Prometheus."""

from __future__ import annotations

import math
from collections.abc import Callable

from examples.shop.tour.common import prometheus, say, wait_until

P95_ROUTE = (
    "histogram_quantile(0.95, sum by (le, http_request_method, http_route) "
    '(increase(http_server_request_duration_seconds_bucket{job="shop"}[5m])))'
)
REQUESTS_ROUTE = (
    "sum by (http_request_method, http_route) "
    '(increase(http_server_request_duration_seconds_count{job="shop"}[5m]))'
)
DB_TIME = (
    "sum by (db_system_name, db_operation_name) "
    '(increase(db_client_operation_duration_seconds_sum{job="shop"}[5m]))'
)
DB_P95 = (
    "histogram_quantile(0.95, sum by (le, db_system_name, db_operation_name) "
    '(increase(db_client_operation_duration_seconds_bucket{job="shop"}[5m])))'
)
CACHE_RATIO = 'otelperf_cache_hit_ratio{job="shop"}'


def prom(expr: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(s.labels), s.value) for s in prometheus.query(expr)]


def wait_scraped(after: float) -> None:
    """The app's last metric export reached the collector before it exited; wait for the first
    Prometheus scrape of the collector's exporter after that (scrape interval 5 s; batch 1 s)."""

    def scraped() -> bool:
        try:
            result = prom('timestamp(up{job="otelcol-exporter"})')
        except OSError:
            return False
        return bool(result) and result[0][1] > after + 1.5

    if not wait_until(scraped, timeout=20):
        say("WARNING: Prometheus has not scraped the collector since the app stopped; values may lag")


def show(title: str, expr: str, row: Callable[[dict[str, str], float], str]) -> None:
    print(f"\n{title}\n   {expr}\n   {prometheus.graph_url(expr)}")
    try:
        result = prom(expr)
    except (OSError, ValueError) as exc:  # BackendError, PrometheusQueryError
        print(f"   (query failed: {exc}; Prometheus log: see `otelperf stack logs prometheus`)")
        return
    if not result:
        print("   (no series)")
    for labels, value in sorted(result, key=lambda r: sorted(r[0].items())):
        print("   " + row(labels, value))


def _ms(value: float) -> str:
    return "      -" if math.isnan(value) else f"{value * 1000:7.1f} ms"  # NaN: no request in the window


def _route(labels: dict[str, str]) -> str:
    return f"{labels.get('http_request_method', '?')} {labels.get('http_route', '?')}"


def latency_panels(instance: str | None, end: float) -> None:
    wait_scraped(end)
    say()
    print(f"== Latency panels: PromQL, and the values now (Prometheus {prometheus.url}) ==")
    print(
        "(increase over 5 min, extrapolated by Prometheus: this run and any shop process of the last minutes)"
    )
    show("p95 per route", P95_ROUTE, lambda m, v: f"{_route(m):<40} p95 {_ms(v)}")
    show("requests per route", REQUESTS_ROUTE, lambda m, v: f"{_route(m):<40} {v:8.0f}")
    show(
        "DB time per operation (seconds spent, summed over requests)",
        DB_TIME,
        lambda m, v: f"{m.get('db_system_name', '?'):<11} {m.get('db_operation_name', '?'):<8} {v:8.2f} s",
    )
    show(
        "p95 per DB operation",
        DB_P95,
        lambda m, v: f"{m.get('db_system_name', '?'):<11} {m.get('db_operation_name', '?'):<8} p95 {_ms(v)}",
    )

    def ratio(m: dict[str, str], v: float) -> str:
        mine = " (this run)" if instance and m.get("service_instance_id") == instance else ""
        name, instance_id = m.get("otelperf_cache_name", "?"), m.get("service_instance_id", "?")
        return f"{name:<11} {v:6.1%}  instance {instance_id}{mine}"

    show("cache hit ratio (since each process started)", CACHE_RATIO, ratio)
