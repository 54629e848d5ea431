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
from tests.e2e.conftest import (
    BIN,
    JAEGER,
    PROMETHEUS,
    ROOT,
    JSpan,
    SentRequest,
    StackUrls,
    attributes,
    free_port,
    get_json,
    hex_id,
    jaeger_trace,
    poll,
    shop_env,
    spans_of,
    start_app,
    stop_app,
    traced_request,
    wait_ready,
    wait_spans_stored,
)

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
    port = free_port()
    env = shop_env(
        DATABASE_URL=db_url.replace("postgresql://", "postgresql+asyncpg://", 1),
        REDIS_URL=redis_url,
        SHOP_CACHE_PREFIX=f"e2e-findings-{uuid.uuid4().hex[:8]}:",
        OTELPERF_N_PLUS_ONE_MIN_MS="0",
        OTELPERF_BUDGETS=f"{SEARCH_ROUTE}=1ms",
    )
    cmd = [str(BIN / "otelperf"), "run", "--service-name", SERVICE, "--"]
    cmd += [str(BIN / "python"), "-m", "uvicorn", "examples.shop.app:app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    started = time.time()
    proc = start_app(cmd, env)
    sent: dict[str, SentRequest] = {}
    try:
        wait_ready(port, proc)
        plan = [
            ("list", "/orders", {"limit": LIST_LIMIT}),
            ("eager", "/orders-eager", {"limit": LIST_LIMIT}),
            ("search", "/reports/search", {"q": "gift"}),
        ]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for tag, path, params in plan:
                trace_id, parent_id, response = traced_request(client, "GET", path, params=params)
                sent[tag] = SentRequest(tag, "GET", path, path, trace_id, parent_id, response.json())
    finally:
        output = stop_app(proc)
    assert proc.returncode == 0, f"shop exited with {proc.returncode}:\n{output}"
    assert "Traceback" not in output, output
    wait_spans_stored()
    listed = len(sent["list"].body)
    assert listed >= 5, f"the N+1 list returned {listed} orders; the detector needs at least 5"
    return FindingsRun(sent["list"], sent["eager"], sent["search"], listed, started)


@dataclass(frozen=True)
class FindingEvent:
    span: JSpan  # the span the finding is shown on
    attributes: dict[str, Any]

    @property
    def detector(self) -> str:
        return str(self.attributes["otelperf.finding.detector"])


def trace_with_findings(sent: SentRequest) -> tuple[list[JSpan], list[FindingEvent]]:
    """The trace's spans and its ``otelperf.finding`` events (conftest's JSpan has no events)."""
    spans = {s.span_id: s for s in jaeger_trace(sent.trace_id)}
    document = get_json(f"{JAEGER}/api/v3/traces/{sent.trace_id}")
    assert len(spans_of(document)) == len(spans)
    findings = []
    for resource_spans in document["result"]["resourceSpans"]:
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for event in span.get("events", []):
                    if event["name"] == "otelperf.finding":
                        on = spans[hex_id(span["spanId"], 8)]
                        findings.append(FindingEvent(on, attributes(event.get("attributes"))))
    return list(spans.values()), findings


def server_root(spans: list[JSpan], sent: SentRequest) -> JSpan:
    (root,) = [s for s in spans if s.parent_span_id == sent.parent_span_id]
    assert root.kind == 2, root
    return root


def test_n_plus_one_list_has_one_finding_on_the_parent_of_the_repeated_selects(
    findings_run: FindingsRun,
) -> None:
    spans, findings = trace_with_findings(findings_run.n_plus_one)
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
    assert finding.attributes["otelperf.finding.hint"]
    root = server_root(spans, findings_run.n_plus_one)
    assert root.attributes["otelperf.findings.count"] == len(findings)
    assert "n_plus_one" in root.attributes["otelperf.findings.detectors"]


def test_eager_list_has_no_n_plus_one(findings_run: FindingsRun) -> None:
    spans, findings = trace_with_findings(findings_run.eager)
    assert len(findings_run.eager.body) == findings_run.listed  # the same orders, items loaded eagerly
    assert [f for f in findings if f.detector == "n_plus_one"] == []
    assert "otelperf.findings.count" not in server_root(spans, findings_run.eager).attributes


def test_search_over_its_budget_has_a_latency_budget_finding_on_the_request(
    findings_run: FindingsRun,
) -> None:
    spans, findings = trace_with_findings(findings_run.search)
    root = server_root(spans, findings_run.search)
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

    def total() -> float | None:
        body = get_json(f"{PROMETHEUS}/api/v1/query", {"query": f"sum({metric}{selector})"})
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    value: float = poll(f"{metric}{selector}", total, lambda v: v is not None, 30.0)
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
    return subprocess.run(
        [str(BIN / "otelperf"), "report", "--prometheus", PROMETHEUS, "--window", window],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_otelperf_report_reads_prometheus(report: subprocess.CompletedProcess[str]) -> None:
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith("findings of the last "), report.stdout
    assert "most time-consuming first" in report.stdout.splitlines()[0]


def test_otelperf_report_lists_the_n_plus_one_of_the_list(report: subprocess.CompletedProcess[str]) -> None:
    assert re.search(rf"n_plus_one\s+\w+\s+{re.escape(N_PLUS_ONE_ROUTE)}\s", report.stdout), report.stdout
