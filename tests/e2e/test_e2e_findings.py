"""The in-process detectors' findings through the real path: span events in Jaeger, counters in
Prometheus, and ``otelperf report`` reading them back.

The shop runs once more under ``otelperf run`` (its own service name, so its series are its own),
with settings that make the findings deterministic: ``OTELPERF_N_PLUS_ONE_MIN_MS=0`` (the N+1 list
qualifies however fast PostgreSQL answers) and a 1 ms budget for ``GET /reports/search``.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.e2e._backend import (
    PROMETHEUS,
    StackUrls,
    jaeger_trace,
    poll,
    prometheus_value,
    server_root,
    trace_with_findings,
    wait_spans_stored,
)
from tests.e2e._shop import SentRequest, run_otelperf, send_traced, shop_env, start_shop

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SERVICE = "shop-e2e-findings"
N_PLUS_ONE_ROUTE = "GET /orders"  # a finding's route is its request's SERVER span name
SEARCH_ROUTE = "GET /reports/search"
LIST_LIMIT = 8


@dataclass(frozen=True)
class FindingsRun:
    n_plus_one: SentRequest
    eager: SentRequest
    search: SentRequest
    listed: int  # orders the N+1 list returned: one SELECT order_items each
    started: float  # unix seconds, before the app started


@pytest.fixture(scope="module")
def findings_run(stack: StackUrls, shop_database: tuple[str, str], redis_url: str) -> FindingsRun:
    _, db_url = shop_database
    env = shop_env(
        postgres_url=db_url,
        redis_url=redis_url,
        cache_prefix=f"e2e-findings-{uuid.uuid4().hex[:8]}:",
        OTELPERF_N_PLUS_ONE_MIN_MS="0",
        OTELPERF_BUDGETS=f"{SEARCH_ROUTE}=1ms",
    )
    started = time.time()
    sent: dict[str, SentRequest] = {}
    with start_shop(service=SERVICE, env=env) as shop:
        plan: list[tuple[str, str, dict[str, Any]]] = [
            ("list", "/orders", {"limit": LIST_LIMIT}),
            ("eager", "/orders-eager", {"limit": LIST_LIMIT}),
            ("search", "/reports/search", {"q": "gift"}),
        ]
        with httpx.Client(base_url=shop.url) as client:
            for tag, path, params in plan:
                sent[tag] = send_traced(client, tag, path, params)
    output = shop.output
    assert shop.returncode == 0, f"shop exited with {shop.returncode}:\n{output}"
    assert "Traceback" not in output, output
    wait_spans_stored()
    listed = len(sent["list"].body)
    assert listed >= 5, f"the N+1 list returned {listed} orders; the detector needs at least 5"
    return FindingsRun(sent["list"], sent["eager"], sent["search"], listed, started)


def test_n_plus_one_list_has_one_finding_on_the_parent_of_the_repeated_selects(
    findings_run: FindingsRun,
) -> None:
    spans, findings = trace_with_findings(findings_run.n_plus_one.trace_id)
    item_selects = [
        s
        for s in spans
        if s.attributes.get("db.operation.name") == "SELECT"
        and s.attributes.get("db.collection.name") == "order_items"
    ]
    assert len(item_selects) == findings_run.listed
    n_plus_one = [f for f in findings if f.detector == "n_plus_one"]
    assert len(n_plus_one) == 1, findings
    (finding,) = n_plus_one
    assert finding.attributes["otelperf.finding.count"] == len(item_selects)
    assert {s.parent_span_id for s in item_selects} == {finding.span.span_id}
    assert "order_items" in finding.attributes["otelperf.finding.statement"]
    # Where, and the exact fix: the loop's line in the route, the relationship, the orders' query.
    assert finding.attributes["code.function.name"] == "list_orders_n_plus_one"
    assert finding.attributes["code.file.path"].endswith("examples/shop/routes_orders.py")
    assert finding.attributes["otelperf.finding.relationship"] == "Order.items"
    assert re.match(
        r"add `\.options\(selectinload\(Order\.items\)\)` to the query at"
        r" \S*examples/shop/routes_orders\.py:\d+ in list_orders_n_plus_one\(\)"
        r" and read `\.items` instead of the \d+ queries at ",
        finding.attributes["otelperf.finding.hint"],
    ), finding.attributes["otelperf.finding.hint"]
    root = server_root(spans, findings_run.n_plus_one.parent_span_id)
    assert root.attributes["otelperf.findings.count"] == len(findings)
    assert "n_plus_one" in root.attributes["otelperf.findings.detectors"]


def test_eager_list_has_no_n_plus_one(findings_run: FindingsRun) -> None:
    spans, findings = trace_with_findings(findings_run.eager.trace_id)
    assert len(findings_run.eager.body) == findings_run.listed  # the same orders, items loaded eagerly
    assert [f for f in findings if f.detector == "n_plus_one"] == []
    assert "otelperf.findings.count" not in server_root(spans, findings_run.eager.parent_span_id).attributes


def test_search_over_its_budget_has_a_latency_budget_finding_on_the_request(
    findings_run: FindingsRun,
) -> None:
    spans, findings = trace_with_findings(findings_run.search.trace_id)
    root = server_root(spans, findings_run.search.parent_span_id)
    budget = [f for f in findings if f.detector == "latency_budget"]
    assert len(budget) == 1, findings
    assert budget[0].span.span_id == root.span_id
    assert budget[0].attributes["otelperf.finding.statement"] == SEARCH_ROUTE
    assert "budget 1 ms" in budget[0].attributes["otelperf.finding.hint"]
    assert "latency_budget" in root.attributes["otelperf.findings.detectors"]


def this_run_total(metric: str, run: FindingsRun) -> float:
    """``metric`` summed over this run's N+1 findings of the list, once Prometheus has scraped it."""
    (instance,) = {s.resource["service.instance.id"] for s in jaeger_trace(run.n_plus_one.trace_id)}
    selector = (
        f'{{job="{SERVICE}",service_instance_id="{instance}",'
        f'detector="n_plus_one",route="{N_PLUS_ONE_ROUTE}"}}'
    )

    value: float = poll(
        f"{metric}{selector}",
        lambda: prometheus_value(f"sum({metric}{selector})"),
        lambda v: v is not None,
        30.0,
    )
    return value


def test_findings_counted_in_prometheus(findings_run: FindingsRun) -> None:
    assert this_run_total("otelperf_findings_total", findings_run) == 1  # one N+1 list request
    assert this_run_total("otelperf_findings_time_milliseconds_total", findings_run) > 0


@pytest.fixture(scope="module")
def report(findings_run: FindingsRun) -> subprocess.CompletedProcess[str]:
    """``otelperf report`` as a user runs it, once Prometheus has this run's counters; its window
    covers this run alone (the report lists every service: an earlier demo must not count)."""
    this_run_total("otelperf_findings_total", findings_run)
    window = f"{math.ceil(time.time() - findings_run.started) + 2}s"
    # Every row: on a loaded machine this run's own slow-query findings can outrank its one N+1.
    return run_otelperf(
        "report", "--prometheus", PROMETHEUS, "--window", window, "--limit", "500", timeout=30
    )


def test_otelperf_report_reads_prometheus(report: subprocess.CompletedProcess[str]) -> None:
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("findings of the last "), report.stdout
    assert "most time-consuming first" in report.stdout.splitlines()[0]


def test_otelperf_report_lists_the_n_plus_one_of_the_list(report: subprocess.CompletedProcess[str]) -> None:
    assert re.search(rf"n_plus_one\s+\w+\s+{re.escape(N_PLUS_ONE_ROUTE)}\s", report.stdout), report.stdout
    # ...and, under its row, the line that ran it.
    assert re.search(
        r"\n\s+at \S*examples/shop/routes_orders\.py:\d+ in list_orders_n_plus_one\(\)", report.stdout
    )
