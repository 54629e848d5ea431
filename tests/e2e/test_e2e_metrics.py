"""Metrics through the real path: app → OTLP → Collector (Prometheus exporter, spanmetrics, receivers)
→ Prometheus, read back with Prometheus' /api/v1/query and /api/v1/query_exemplars.

The shop run under ``otelperf run`` (``shop_run``) is one process, so its series carry one
``service_instance_id`` (read from its traces in Jaeger): filtered to it, every count must equal
what the test sent; across runs of the same service name (a second session against a running
stack) counts only add up. Raw counters, not ``rate()``: the series are as young as the process.
"""

from __future__ import annotations

import time

import pytest
from tests.e2e._backend import PROMETHEUS, StackUrls, jaeger_trace, poll
from tests.e2e.conftest import SERVICE, ShopRun

from otelperf.backends import Prometheus, Sample

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

# Host metrics and the database receivers scrape every 10 s, Prometheus every 5 s.
SCRAPE_WAIT = 30.0

ORDER_ROUTE = "/orders/{order_id}"
PRICE_ROUTE = "/products/{product_id}/price"


def query(promql: str) -> list[Sample]:
    return Prometheus(PROMETHEUS, timeout=5.0).query(promql)


def value_of(promql: str) -> float | None:
    """The single value of an aggregating query (``sum(...)``), None while there is no series."""
    return Prometheus(PROMETHEUS, timeout=5.0).value(promql)


def wait_value(promql: str, expected: float, timeout: float = SCRAPE_WAIT) -> float:
    """Poll until the query's value reaches ``expected``, then check it did not overshoot."""
    value = poll(promql, lambda: value_of(promql), lambda v: v is not None and v >= expected, timeout)
    assert value == expected, f"{promql} = {value}, expected {expected}"
    return float(value)


def wait_series(promql: str, timeout: float = SCRAPE_WAIT) -> list[Sample]:
    series: list[Sample] = poll(promql, lambda: query(promql), bool, timeout)
    return series


@pytest.fixture(scope="module")
def instance(stack: StackUrls, shop_run: ShopRun) -> str:
    """The run's service.instance.id (a new one per process): Prometheus' label for "this run"."""
    spans = jaeger_trace(shop_run.requests["order-1"].trace_id)
    ids = {s.resource["service.instance.id"] for s in spans}
    assert len(ids) == 1
    return str(ids.pop())


def run_selector(instance: str, **labels: str) -> str:
    pairs = {"service_name": SERVICE, "service_instance_id": instance, **labels}
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def test_http_server_duration_counts_equal_the_requests_sent(shop_run: ShopRun, instance: str) -> None:
    for route in (ORDER_ROUTE, PRICE_ROUTE, "/orders", "/inventory/{product_id}", "/login"):
        sent = shop_run.sent_to(route)
        this_run = run_selector(instance, http_route=route)
        wait_value(f"sum(http_server_request_duration_seconds_count{this_run})", sent)
        # Every series of the histogram has its buckets; the +Inf bucket is the count.
        inf_bucket = run_selector(instance, http_route=route, le="+Inf")
        assert value_of(f"sum(http_server_request_duration_seconds_bucket{inf_bucket})") == sent
    # By service name alone (earlier runs against the same stack add up, never fall short).
    every_run = value_of(
        f'sum(http_server_request_duration_seconds_count{{job="{SERVICE}",http_route="{ORDER_ROUTE}"}})'
    )
    assert every_run is not None and every_run >= shop_run.sent_to(ORDER_ROUTE)
    labels = query(
        f"http_server_request_duration_seconds_count{run_selector(instance, http_route=ORDER_ROUTE)}"
    )[0].labels
    assert labels["job"] == SERVICE and labels["instance"] == instance  # honor_labels on the exporter job
    assert labels["http_request_method"] == "GET"
    assert labels["http_response_status_code"] == "200"
    assert labels["service_version"] == "1.2.3"
    assert labels["deployment_environment_name"] == "e2e"


def test_db_client_operation_duration_per_system_and_operation(shop_run: ShopRun, instance: str) -> None:
    postgres = run_selector(instance, db_system_name="postgresql", db_operation_name="SELECT")
    series = wait_series(f"db_client_operation_duration_seconds_count{postgres}")
    assert {s.labels["db_namespace"] for s in series} == {shop_run.database}
    # Requests alone issue 1 + n (N+1 list) + 2 (orders by id: order + items) ... SELECTs; seeding adds more.
    assert sum(s.value for s in series) >= 1 + shop_run.customer_orders
    redis = run_selector(instance, db_system_name="redis")
    operations = {
        s.labels["db_operation_name"]: s.value
        for s in wait_series(f"db_client_operation_duration_seconds_count{redis}")
    }
    assert operations == {"GET": 2.0, "SET": 1.0}  # price miss: GET + SET; price hit: GET


def test_cache_requests_and_hit_ratio(shop_run: ShopRun, instance: str) -> None:
    cache = run_selector(instance, otelperf_cache_name="redis")
    for result in ("miss", "hit"):  # price: first lookup misses, second hits
        counter = run_selector(instance, otelperf_cache_name="redis", otelperf_cache_result=result)
        wait_value(f"sum(otelperf_cache_requests_total{counter})", 1)
    assert value_of(f"max(otelperf_cache_hit_ratio{cache})") == 0.5


def test_spanmetrics_calls_and_duration_buckets(shop_run: ShopRun, instance: str) -> None:
    server = {"span_kind": "SPAN_KIND_SERVER", "span_name": f"GET {ORDER_ROUTE}"}
    wait_value(
        f"sum(traces_span_metrics_calls_total{run_selector(instance, **server)})",
        shop_run.sent_to(ORDER_ROUTE),
    )
    series = query(f"traces_span_metrics_calls_total{run_selector(instance, **server)}")
    assert {s.labels["status_code"] for s in series} == {"STATUS_CODE_UNSET"}
    assert {s.labels["http_route"] for s in series} == {ORDER_ROUTE}
    # 500 ms (the latency budget) is a bucket edge, not an interpolation between 400 and 800 ms.
    buckets = query(f"traces_span_metrics_duration_seconds_bucket{run_selector(instance, **server)}")
    edges = {s.labels["le"] for s in buckets}
    assert "0.5" in edges, sorted(edges)
    under_budget = value_of(
        f"sum(traces_span_metrics_duration_seconds_bucket{run_selector(instance, le='0.5', **server)})"
    )
    assert under_budget is not None and under_budget <= shop_run.sent_to(ORDER_ROUTE)
    # The SDK histogram has the same edge.
    sdk_edges = {
        s.labels["le"]
        for s in query(
            f"http_server_request_duration_seconds_bucket{run_selector(instance, http_route=ORDER_ROUTE)}"
        )
    }
    assert "0.5" in sdk_edges, sorted(sdk_edges)


def test_host_postgresql_and_redis_receiver_metrics(stack: StackUrls, shop_run: ShopRun) -> None:
    cpu = wait_series('system_cpu_time_seconds_total{job="otelcol-exporter"}')
    assert {"user", "system", "idle"} <= {s.labels["state"] for s in cpu}
    backends = wait_series("postgresql_backends")
    databases = {s.labels.get("postgresql_database_name") for s in backends}
    assert "postgres" in databases, databases
    assert all(s.labels["instance"].endswith(":5433") for s in backends)
    clients = wait_series('redis_clients_connected{job="otelcol-exporter"}')
    assert clients[0].value >= 1  # the collector's own receiver is connected
    assert clients[0].labels["redis_version"]


def _exemplar_trace_ids(metric_selector: str) -> set[str]:
    now = time.time()
    found = Prometheus(PROMETHEUS, timeout=5.0).exemplars(metric_selector, now - 900, now + 60)
    return {exemplar.labels.get("trace_id", "") for series in found for exemplar in series.exemplars}


# Only spanmetrics here. The SDK histograms' exemplars do not reliably reach Prometheus: the SDK
# keeps a bucket's exemplar for one export (1 s here) and Prometheus scrapes every 5 s, and
# http.server.request.duration is recorded after the request's context is detached (no exemplar).
def test_spanmetrics_buckets_carry_exemplars_linking_to_our_traces(shop_run: ShopRun, instance: str) -> None:
    ours = {sent.trace_id for sent in shop_run.requests.values()}
    selector = "traces_span_metrics_duration_seconds_bucket" + run_selector(instance)
    poll(
        f"exemplars of {selector} with one of our trace ids",
        lambda: _exemplar_trace_ids(selector),
        lambda ids: bool(ids & ours),
        SCRAPE_WAIT,
    )
