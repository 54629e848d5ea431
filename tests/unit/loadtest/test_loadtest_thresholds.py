"""Budget thresholds of a load run: which checks exist, when they breach, how the table reads."""

from __future__ import annotations

from otelperf.budgets import parse_budgets
from otelperf.loadtest.thresholds import TOTAL, RouteStats, breaches, evaluate, format_table

BUDGETS = parse_budgets(
    {
        "defaults": {"p95": "500ms", "error_rate": "1%", "min_rps": 50},
        "routes": {"GET /orders/{order_id}": {"p95": "200ms", "p99": "400ms", "min_rps": 5}},
    }
)


def stats(
    route: str, *, requests: int = 100, failures: int = 0, p95: float = 10, p99: float = 20, rps: float = 10
):
    return RouteStats(route, requests, failures, p50_ms=5, p95_ms=p95, p99_ms=p99, rps=rps)


def by_key(checks):
    return {(c.route, c.metric): c for c in checks}


def test_route_budget_applies_p95_p99_error_rate_and_its_own_floor() -> None:
    checks = by_key(
        evaluate([stats("GET /orders/{order_id}", p95=250, p99=390, rps=4)], stats(TOTAL, rps=60), BUDGETS)
    )
    assert checks[("GET /orders/{order_id}", "p95")].passed is False  # 250 > 200
    assert checks[("GET /orders/{order_id}", "p95")].budget_route == "GET /orders/{order_id}"
    assert checks[("GET /orders/{order_id}", "p99")].passed is True
    assert checks[("GET /orders/{order_id}", "throughput")].passed is False  # 4 < 5
    assert checks[(TOTAL, "throughput")].passed is True


def test_other_routes_use_the_defaults_and_have_no_floor_of_their_own() -> None:
    checks = by_key(evaluate([stats("GET /products", p95=499)], stats(TOTAL, rps=60), BUDGETS))
    assert checks[("GET /products", "p95")].passed and checks[("GET /products", "p95")].budget_route == "*"
    assert ("GET /products", "p99") not in checks  # no p99 budget in the defaults
    assert ("GET /products", "throughput") not in checks


def test_budget_edge_is_within_budget_and_error_rate_breaches_above_it() -> None:
    checks = by_key(evaluate([stats("GET /a", p95=500, failures=2)], stats(TOTAL, rps=60), BUDGETS))
    assert checks[("GET /a", "p95")].passed is True
    assert checks[("GET /a", "error rate")].passed is False  # 2 % > 1 %
    assert checks[("GET /a", "error rate")].value == 0.02


def test_throughput_checks_can_be_turned_off_for_ramps() -> None:
    checks = evaluate(
        [stats("GET /orders/{order_id}", rps=1)], stats(TOTAL, rps=1), BUDGETS, check_throughput=False
    )
    assert not [c for c in checks if c.metric == "throughput"]
    assert not breaches(checks)


def test_a_run_without_requests_fails() -> None:
    checks = evaluate([], stats(TOTAL, requests=0, rps=0), BUDGETS, check_throughput=False)
    assert [(c.route, c.metric) for c in breaches(checks)] == [(TOTAL, "requests")]


def test_table_names_each_breach_and_the_verdict() -> None:
    checks = evaluate([stats("GET /orders/{order_id}", p95=250)], stats(TOTAL, rps=60), BUDGETS)
    table = format_table(checks)
    lines = table.splitlines()
    assert lines[0].split() == ["route", "threshold", "measured", "budget", "from", "verdict"]
    breach = next(line for line in lines if "BREACHED" in line)
    assert (
        breach.split()[:2] == ["GET", "/orders/{order_id}"] and "250 ms" in breach and "<= 200 ms" in breach
    )
    assert lines[-1] == f"thresholds: 1 of {len(checks)} BREACHED"
    assert format_table(evaluate([stats("GET /x")], stats(TOTAL, rps=60), BUDGETS)).endswith("passed")
