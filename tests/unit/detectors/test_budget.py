"""LatencyBudgetDetector: budget findings with their breakdown, route stats, metrics, the corpus."""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import SpanKind
from tests.unit.detectors.corpus_budget import (
    BASE_NS,
    MS,
    ORDERS,
    SCENARIOS,
    SQL_ITEMS,
    SQL_ORDERS,
    build,
    db,
    gather_two_queries,
    orders_400ms_db_300,
    server,
)

from otelperf.config import Settings, resolve_settings
from otelperf.detectors._api import hex_span_id
from otelperf.detectors.budget import LatencyBudgetDetector, route_fingerprint, split_budgets


def detector(budgets: dict[str, float], meter: Any = None, **kwargs: Any) -> LatencyBudgetDetector:
    return LatencyBudgetDetector(Settings(budgets=budgets), meter, **kwargs)


def test_breach_finding_says_where_the_time_went() -> None:
    view = build(orders_400ms_db_300())
    [finding] = detector({ORDERS: 300, "*": 1000}).analyze(view)
    assert finding.detector == "latency_budget"
    assert finding.severity == "warning"
    assert finding.route == ORDERS
    assert finding.statement == ORDERS
    assert finding.fingerprint == route_fingerprint(ORDERS) != route_fingerprint("GET /other")
    assert finding.count == 1
    assert finding.duration_ms == 400.0
    assert finding.anchor_span_id == hex_span_id(view.root)
    assert finding.trace_id == view.trace_id
    assert finding.details["budget_ms"] == 300.0
    assert finding.details["over_ms"] == 100.0
    assert finding.details["breakdown"] == {"db": 300.0, "cache": 0.0, "http": 0.0, "app": 100.0}
    assert finding.details["top_offenders"] == [
        {"statement": SQL_ORDERS, "component": "db", "count": 2, "exclusive_ms": 200.0},
        {"statement": SQL_ITEMS, "component": "db", "count": 1, "exclusive_ms": 100.0},
    ]
    assert finding.hint == (
        "400 ms, budget 300 ms: db 300 ms (75%), app 100 ms (25%); "
        "top: SELECT * FROM orders WHERE customer_id = $1 2x 200 ms"
    )
    query_ids = {hex_span_id(s) for s in view.spans if s.name == "SELECT"}
    assert set(finding.span_ids) == {hex_span_id(view.root), *query_ids}


def test_the_finding_names_the_line_that_ran_the_top_offender() -> None:
    """db leads (300 of 400 ms): the call site is the line the top statement ran from, as its
    spans' code.* attributes say; without them, the finding names none."""
    site = {
        "code.file.path": "/srv/app/orders.py",
        "code.line.number": 42,
        "code.function.name": "list_orders",
    }
    root = orders_400ms_db_300()
    for child in root.children[:2]:  # the two SQL_ORDERS statements (the top offender)
        child.attributes.update(site)
    [finding] = detector({ORDERS: 300}).analyze(build(root))
    assert finding.details["call_site"] == "/srv/app/orders.py:42 in list_orders()"
    assert finding.details["code.line.number"] == 42
    assert finding.details["code.function.name"] == "list_orders"
    [plain] = detector({ORDERS: 300}).analyze(build(orders_400ms_db_300()))
    assert "call_site" not in plain.details and "code.file.path" not in plain.details


def test_more_than_twice_the_budget_is_critical() -> None:
    [finding] = detector({"*": 199}).analyze(build(orders_400ms_db_300()))
    assert finding.severity == "critical"
    [finding] = detector({"*": 200}).analyze(build(orders_400ms_db_300()))
    assert finding.severity == "warning"


def test_exactly_on_budget_and_no_budget_at_all_are_not_findings() -> None:
    assert detector({ORDERS: 400}).analyze(build(orders_400ms_db_300())) == []
    assert detector({}).analyze(build(orders_400ms_db_300())) == []
    assert detector({"GET /other": 1}).analyze(build(orders_400ms_db_300())) == []


def test_gathered_queries_breakdown_in_the_finding() -> None:
    [finding] = detector({"*": 200}).analyze(build(gather_two_queries()))
    assert finding.details["breakdown"] == {"db": 100.0, "cache": 50.0, "http": 0.0, "app": 100.0}
    assert finding.hint.startswith(
        "250 ms, budget 200 ms: db 100 ms (40%), app 100 ms (40%), cache 50 ms (20%)"
    )


def test_component_budget_breach() -> None:
    view = build(orders_400ms_db_300())
    findings = detector({"*": 1000, "db": 150, "cache": 20}).analyze(view)
    [finding] = findings
    assert finding.detector == "latency_budget"
    assert finding.statement == f"{ORDERS} (db)"
    assert finding.details["component"] == "db"
    assert finding.details["budget_ms"] == 150.0
    assert finding.duration_ms == 300.0
    assert finding.severity == "warning"  # 300 is not more than twice 150
    assert finding.fingerprint == route_fingerprint(ORDERS, "db") != route_fingerprint(ORDERS)
    assert finding.hint == (
        "db took 300 ms of a 150 ms db budget; top: SELECT * FROM orders WHERE customer_id = $1 2x 200 ms"
    )


def test_request_and_component_breach_together() -> None:
    findings = detector({ORDERS: 300}, component_budgets={"app": 50}).analyze(build(orders_400ms_db_300()))
    assert sorted(f.statement for f in findings) == [ORDERS, f"{ORDERS} (app)"]


def test_component_budgets_from_settings_and_code() -> None:
    routes, components = split_budgets(
        {"GET /orders/{id}": 200, "*": 500, "db": 150, "cache": 20, "GET /search http": 300, "GET /db": 9}
    )
    assert routes == {"GET /orders/{id}": 200, "*": 500, "GET /db": 9}
    assert components == {"*": {"db": 150, "cache": 20}, "GET /search": {"http": 300}}

    settings = resolve_settings(
        environ={"OTELPERF_BUDGETS": "GET /orders/{id}=200ms,*=0.5s,db=150ms,GET /search http=300ms"}
    )
    built = LatencyBudgetDetector(settings, None, component_budgets={"db": 100})
    assert built.budget_for("GET /orders/{id}") == 200.0
    assert built.budget_for("GET /anything") == 500.0
    assert built.component_budgets_for("GET /search") == {"db": 100.0, "http": 300.0}
    assert built.component_budgets_for("GET /orders/{id}") == {"db": 100.0}
    with pytest.raises(ValueError, match="unknown component"):
        LatencyBudgetDetector(settings, None, component_budgets={"disk": 1})


def test_only_server_roots_are_checked() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    budget = detector({"*": 10}, meter)
    for kind in (SpanKind.INTERNAL, SpanKind.CONSUMER, SpanKind.CLIENT):
        view = build(server("job", 0, 400, db(SQL_ORDERS, 0, 300), kind=kind))
        assert budget.analyze(view) == []
    assert budget.route_stats(now_ns=BASE_NS) == {}
    assert _points(reader, "otelperf.request.breakdown") == []


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def test_metrics_breakdown_for_over_budget_requests_and_breach_counter() -> None:
    """The breakdown histogram says where the time of over-budget requests went; requests within
    budget skip the sweep (its cost is paid only where the answer is needed)."""
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    budget = detector({ORDERS: 300}, meter)
    budget.analyze(build(orders_400ms_db_300()))  # breach
    budget.analyze(build(gather_two_queries()))  # no budget for this route: no sweep, no breakdown

    sums = {
        (p.attributes["route"], p.attributes["component"]): round(p.sum, 6)
        for p in _points(reader, "otelperf.request.breakdown")
    }
    assert sums == {(ORDERS, "db"): 0.3, (ORDERS, "app"): 0.1}
    breaches = {
        (p.attributes["route"], p.attributes["budget"]): p.value
        for p in _points(reader, "otelperf.budget.breaches")
    }
    assert breaches == {(ORDERS, "request"): 1}


def test_metric_routes_are_bounded() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    budget = detector({"*": 1}, meter, max_routes=2)
    for route in ("GET /a", "GET /b", "GET /c", "GET /a"):
        budget.analyze(build(server(route, 0, 10)))  # 10 ms over a 1 ms budget: all breach
    routes = {p.attributes["route"] for p in _points(reader, "otelperf.request.breakdown")}
    assert routes == {"GET /a", "GET /b", "_other"}


def test_route_stats_percentiles_and_breach_rate() -> None:
    budget = detector({ORDERS: 90})
    for i in range(1, 101):  # 1..100 ms, one request a second
        budget.analyze(build(server(ORDERS, 0, i), at=BASE_NS + i * 1000 * MS))
    budget.analyze(build(server("GET /health", 0, 2), at=BASE_NS))
    stats = budget.route_stats(now_ns=BASE_NS + 101 * 1000 * MS)
    orders = stats[ORDERS]
    assert (orders.count, orders.p50_ms, orders.p95_ms, orders.p99_ms) == (100, 50.0, 95.0, 99.0)
    assert orders.breach_rate == pytest.approx(0.10)
    assert orders.budget_ms == 90.0
    health = stats["GET /health"]
    assert (health.count, health.p99_ms, health.breach_rate, health.budget_ms) == (1, 2.0, 0.0, None)


def test_route_stats_window_is_bounded_in_time_count_and_routes() -> None:
    budget = detector({}, window_s=60, window_requests=10, max_routes=3)
    for i in range(30):  # 30 requests of 1..30 ms, 10 s apart
        budget.analyze(build(server(ORDERS, 0, i + 1), at=BASE_NS + i * 10_000 * MS))
    last = BASE_NS + 29 * 10_000 * MS + 30 * MS  # when the last request ended
    stats = budget.route_stats(now_ns=last)[ORDERS]
    assert (
        stats.count == 6
    )  # ended in the last 60 s: the requests of 25..30 ms (10, the count bound, is looser)
    assert (stats.p50_ms, stats.p99_ms) == (27.0, 30.0)
    assert budget.route_stats(now_ns=last + 61_000 * MS) == {}

    for route in ("GET /a", "GET /b", "GET /c", "GET /d"):
        budget.analyze(build(server(route, 0, 1), at=last))
    assert set(budget.route_stats(now_ns=last)) == {"GET /b", "GET /c", "GET /d"}
    assert budget.evicted_routes == 1  # GET /a; the idle GET /orders/{id} had already been dropped


def test_route_stats_keep_the_last_requests_of_a_busy_route() -> None:
    budget = detector({}, window_requests=5)
    for i in range(20):
        budget.analyze(build(server(ORDERS, 0, i + 1), at=BASE_NS + i * MS))
    stats = budget.route_stats(now_ns=BASE_NS + 100 * MS)[ORDERS]
    assert (stats.count, stats.p50_ms) == (5, 18.0)


def test_registry_builds_both_detectors_from_settings() -> None:
    from otelperf.detectors._registry import build_detectors
    from otelperf.detectors.cache import CacheDetector

    built = build_detectors(Settings(detectors=("latency_budget", "cache"), budgets={"*": 1}), None)
    assert [type(d) for d in built] == [LatencyBudgetDetector, CacheDetector]
    assert [d.name for d in built] == ["latency_budget", "cache"]


def test_route_stats_default_clock_is_wall_time() -> None:
    budget = detector({"*": 5})
    budget.analyze(build(server(ORDERS, 0, 10), at=time.time_ns()))
    stats = budget.route_stats()[ORDERS]
    assert (stats.count, stats.breach_rate) == (1, 1.0)


# --- the labeled corpus ------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Any) -> None:
    found, _ = scenario.run()
    assert found == scenario.expected


def test_corpus_precision_and_recall(capsys: pytest.CaptureFixture[str]) -> None:
    tp = fp = fn = 0
    for scenario in SCENARIOS:
        found, _ = scenario.run()
        tp += len(found & scenario.expected)
        fp += len(found - scenario.expected)
        fn += len(scenario.expected - found)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    negatives = sum(1 for s in SCENARIOS if not s.expected)
    with capsys.disabled():
        print(
            f"\nbudget/cache corpus: {len(SCENARIOS)} scenarios ({negatives} must-not-flag), "
            f"{tp + fn} expected findings: precision {precision:.2f}, recall {recall:.2f} "
            f"(tp={tp} fp={fp} fn={fn})"
        )
    assert len(SCENARIOS) >= 10
    assert (precision, recall) == (1.0, 1.0)


# --- through the real pipeline -----------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_budget_breach_through_the_pipeline() -> None:
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from otelperf.testing import capture, stop_capture

    cap = capture(detectors="latency_budget", budgets={"*": "10ms"})
    try:
        api = FastAPI()

        @api.get("/slow/{n}")
        async def slow(n: int) -> dict[str, int]:
            import asyncio

            await asyncio.sleep(0.03)
            return {"n": n}

        with TestClient(api) as client:
            assert client.get("/slow/1").json() == {"n": 1}
        assert cap.runtime.tracer_provider is not None and cap.runtime.findings is not None
        cap.runtime.tracer_provider.force_flush()

        [span] = [s for s in cap.spans if s.kind is SpanKind.SERVER]
        assert span.name == "GET /slow/{n}"
        [event] = [e for e in span.events if e.name == "otelperf.finding"]
        attributes = dict(event.attributes or {})
        assert attributes["otelperf.finding.detector"] == "latency_budget"
        assert attributes["otelperf.finding.statement"] == "GET /slow/{n}"
        assert attributes["otelperf.finding.duration_ms"] >= 30.0
        assert str(attributes["otelperf.finding.hint"]).startswith(
            f"{attributes['otelperf.finding.duration_ms']:.0f} ms, budget 10 ms: app "
        )
        assert list((span.attributes or {})["otelperf.findings.detectors"]) == ["latency_budget"]

        [finding] = cap.runtime.findings.recent()
        assert finding.anchor_span_id == hex_span_id(span)
        parts = finding.details["breakdown"]
        assert set(parts) == {"db", "cache", "http", "app"}
        assert parts["app"] >= 30.0 and parts["db"] == parts["cache"] == parts["http"] == 0.0
        assert sum(parts.values()) == pytest.approx(finding.duration_ms, abs=0.01)
        assert finding.severity == "critical"
    finally:
        stop_capture(cap)
