"""End to end: a short Locust run against the shop under `otelperf run`, client metrics in
Prometheus, and a baseline that passes against itself and fails against a slowed shop.

One long-lived shop process per phase (a normal one, then one with the ``SHOP_INJECT_LATENCY_MS``
test hook on ``GET /orders/{order_id}``), both under the same service name, so Prometheus and
Jaeger see them as the same service, like two deployments of it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.e2e._backend import StackUrls, poll, prometheus_result
from tests.e2e._shop import ShopProcess, free_port, fresh_database, run_otelperf, shop_env, start_shop

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

SERVICE = f"shop-e2e-loadtest-{uuid.uuid4().hex[:6]}"
ROUTE = "GET /orders/{order_id}"
INJECTED_MS = "400"
# A shared 2-core CI machine: tail latencies of a few-second run jump by 100s of ms between runs.
# Wide tolerances still catch +400 ms on a ~10-50 ms route; they keep the self-comparison honest.
NOISE = ["--tolerance", "200%", "--min-change", "p50_ms=50", "--min-change", "p95_ms=150"]
NOISE += ["--min-change", "p99_ms=1000"]


@pytest.fixture(scope="module")
def shop_database(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url, "shop_lt") as url:
        yield url


@pytest.fixture(scope="module")
def shop(stack: StackUrls, shop_database: str, redis_url: str) -> Iterator[Callable[..., str]]:
    """``shop(**env)`` starts the shop (stopping the previous one) and returns its base URL."""
    running: list[ShopProcess] = []

    def start(**extra: str) -> str:
        for previous in running:
            output = previous.stop()
            assert "Traceback" not in output, output
        running.clear()
        port = free_port()
        env = shop_env(
            postgres_url=shop_database,
            redis_url=redis_url,
            cache_prefix=f"lt-{uuid.uuid4().hex[:8]}:",
            inventory_port=port,
            **extra,
        )
        started = start_shop(service=SERVICE, env=env, port=port)
        running.append(started)
        return started.url

    try:
        yield start
    finally:
        for previous in running:
            previous.stop()


@pytest.fixture(scope="module")
def budgets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("budgets") / "otelperf.toml"
    path.write_text(
        f'service = "{SERVICE}"\n[defaults]\np95 = "3s"\nerror_rate = "1%"\nmin_rps = 1\n'
        f'[routes."{ROUTE}"]\np95 = "2s"\np99 = "3s"\n'
    )
    return path


def prometheus_sum(promql: str) -> float:
    return sum(r.value for r in prometheus_result(promql))


def test_loadtest_thresholds_client_metrics_and_baseline_gate(
    shop: Callable[..., str], budgets: Path, tmp_path: Path
) -> None:
    host = shop()
    load = ["--scenario", "endpoints", "--users", "4", "--host", host, "--budgets", str(budgets)]

    # 1. a short load run: progress while it runs, the budget table at the end, exit 0
    started = time.time()
    run = run_otelperf("loadtest", *load, "--duration", "4s")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "[loadtest endpoints]" in out  # progress lines
    table = out[out.index("Budget thresholds") :]
    row = next(line for line in table.splitlines() if line.startswith(ROUTE) and " p95 " in line)
    assert row.split()[-2:] == [ROUTE, "ok"] or row.endswith("ok"), row
    assert "<= 2000 ms" in row  # the route's own budget, not the default
    assert "thresholds: all" in table and "otelperf loadtest: all budget thresholds passed" in out

    # 2. the client-side histogram reached Prometheus, with the labels the dashboards select on
    window = f"{int(time.time() - started) + 30}s"
    series = (
        'otelperf_loadtest_request_duration_seconds_count{scenario="endpoints",'
        'http_route="/orders/{order_id}",http_request_method="GET"}'
    )
    poll(
        "client-side request histogram in Prometheus",
        lambda: prometheus_sum(
            f"sum(last_over_time({series}[{window}]) - ({series} offset {window} or {series} * 0))"
        ),
        lambda value: value >= 1,
        timeout=30,
    )

    # 3. record a baseline (one run: the e2e budget is seconds), then it passes against itself
    baseline = tmp_path / "baseline.json"
    record = run_otelperf(
        "baseline", "record", "--out", str(baseline), "--runs", "1", *load, "--duration", "6s"
    )
    assert record.returncode == 0, record.stdout + record.stderr
    document = json.loads(baseline.read_text())
    assert document["metadata"]["service"] == SERVICE
    assert document["metadata"]["load"]["scenario"] == "endpoints"
    orders = document["routes"][ROUTE]
    assert set(orders) >= {
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "rps",
        "error_rate",
        "queries_per_request",
        "requests",
    }
    assert orders["requests"] >= 5 and orders["error_rate"] == 0
    assert orders["queries_per_request"] == 2.0  # the order, then its items (selectinload)
    # The N+1 list: 1 + one query per order. The scenario asks for random customer ids over a random
    # seed, so a customer without orders costs 1 query: the average is above 1, not always >= 2.
    assert document["routes"]["GET /orders"]["queries_per_request"] > 1

    same = run_otelperf(
        "baseline", "compare", "--baseline", str(baseline), "--runs", "1", "--host", host, *NOISE
    )
    assert same.returncode == 0, same.stdout + same.stderr
    assert "baseline: no regression beyond tolerance" in same.stdout

    # 4. the same load against a deliberately slowed shop fails, naming the slowed route
    slow_host = shop(SHOP_INJECT_LATENCY_MS=INJECTED_MS)
    slow = run_otelperf(
        "baseline", "compare", "--baseline", str(baseline), "--runs", "1", "--host", slow_host, *NOISE
    )
    out = slow.stdout + slow.stderr
    assert slow.returncode == 1, out
    p50 = next(line for line in slow.stdout.splitlines() if line.startswith(ROUTE) and " p50_ms " in line)
    assert p50.endswith("REGRESSED"), out
    # The routes' verdict (the findings gate's line follows it: no new N+1 here).
    lines = slow.stdout.strip().splitlines()
    summary = next(line for line in lines if line.startswith("baseline: ") and "regression" in line)
    assert ROUTE in summary, summary
    assert lines[-1] == "baseline: no new N+1 or slow-query finding", out
