"""The detectors' scenarios through the example shop, on real PostgreSQL and Redis, read back from
Jaeger (``otelperf.finding`` span events) and Prometheus (``otelperf_findings_total``).

The shop runs once under ``otelperf run``, on a database of its own with a big stock ledger
(``SHOP_SEED_STOCK_MOVEMENTS``), and answers one request per scenario, each with a trace id the
test made:

* a slow query: ``GET /inventory/{id}/movements`` scans the unindexed ledger (default 100 ms limit);
* a Redis N+1: ``GET /catalog`` reads each product's price with its own ``GET``;
* an outgoing-HTTP N+1: ``GET /inventory`` calls the stock service once per product;
* and look-alikes that must stay quiet: a primary-key read, the ``MGET`` twin of the catalog, and
  both N+1 routes on a page shorter than the detector's count threshold.

``OTELPERF_N_PLUS_ONE_MIN_MS=0``: on loopback a Redis GET or a call to a local service takes well
under a millisecond, so the default "50 ms together" would depend on the machine's load; the
count threshold (5) stays, and the short pages test it.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from tests.e2e.conftest import (
    BIN,
    JAEGER,
    PROMETHEUS,
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

SERVICE = "shop-e2e-scenarios"
STOCK_SERVICE = "stock-e2e-scenarios"
# ~3x the 100 ms default on this 2-core VM (PostgreSQL, parallel seq scan); seeding takes ~10 s.
LEDGER_ROWS = 3_000_000
PAGE = 8  # products per N+1 page: over the detector's count threshold (5)
SHORT_PAGE = 4  # under it
PRODUCT = 5

SLOW_ROUTE = "GET /inventory/{product_id}/movements"
CATALOG_ROUTE = "GET /catalog"
INVENTORY_ROUTE = "GET /inventory"

# (tag, path, query parameters): one request each, in this order.
PLAN: list[tuple[str, str, dict[str, Any]]] = [
    ("movements", f"/inventory/{PRODUCT}/movements", {"limit": 20}),
    ("product", f"/products/{PRODUCT}", {}),
    # The batched twin first: its MGET misses, then it writes the page's prices, so the N+1 that
    # follows reads the same keys and hits.
    ("catalog-batched", "/catalog-batched", {"limit": PAGE}),
    ("catalog", "/catalog", {"limit": PAGE}),
    ("catalog-short", "/catalog", {"limit": SHORT_PAGE}),  # cached prices: hits
    ("inventory", "/inventory", {"limit": PAGE}),
    ("inventory-short", "/inventory", {"limit": SHORT_PAGE, "offset": PAGE}),
]
# Sent to the stock service, whose inventory overview calls itself.
STOCK_PLAN: list[tuple[str, str, dict[str, Any]]] = [("inventory-self", "/inventory", {"limit": PAGE})]


@pytest.fixture(scope="module")
def scenarios_database(postgres_url: str) -> Iterator[str]:
    """A database of its own: the big ledger is seeded once, at the shop's first start on it."""
    name = f"shop_scenarios_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class ScenarioRun:
    sent: dict[str, SentRequest]
    stopped: float  # unix seconds, after both processes stopped (and flushed)


def shop_command(service: str, port: int) -> list[str]:
    cmd = [str(BIN / "otelperf"), "run", "--service-name", service, "--"]
    cmd += [str(BIN / "python"), "-m", "uvicorn", "examples.shop.app:app"]
    return [*cmd, "--host", "127.0.0.1", "--port", str(port)]


@pytest.fixture(scope="module")
def scenario_run(stack: StackUrls, scenarios_database: str, redis_url: str) -> ScenarioRun:
    """The shop, and a second shop process as its stock service (as in production: another service).

    The stock process points its own inventory overview at itself, for the self-call case.
    """
    port, stock_port = free_port(), free_port()
    stock_url = f"http://127.0.0.1:{stock_port}/internal/stock/{{product_id}}"
    env = shop_env(
        DATABASE_URL=scenarios_database.replace("postgresql://", "postgresql+asyncpg://", 1),
        REDIS_URL=redis_url,
        SHOP_CACHE_PREFIX=f"e2e-scenarios-{uuid.uuid4().hex[:8]}:",  # fresh keys: the first read misses
        SHOP_SEED_STOCK_MOVEMENTS=str(LEDGER_ROWS),
        SHOP_INVENTORY_URL=stock_url,
        OTELPERF_N_PLUS_ONE_MIN_MS="0",
        OTELPERF_BUDGETS_FILE="none",  # no latency budgets: each scenario has exactly its own finding
    )
    proc = start_app(shop_command(SERVICE, port), env)
    stock: subprocess.Popen[bytes] | None = None
    sent: dict[str, SentRequest] = {}
    try:
        wait_ready(port, proc, timeout=180.0)  # the first start seeds the ledger
        stock = start_app(shop_command(STOCK_SERVICE, stock_port), env)  # seeded: starts at once
        wait_ready(stock_port, stock)
        for base, plan in ((port, PLAN), (stock_port, STOCK_PLAN)):
            with httpx.Client(base_url=f"http://127.0.0.1:{base}") as client:
                for tag, path, params in plan:
                    trace_id, parent_id, response = traced_request(client, "GET", path, params=params)
                    sent[tag] = SentRequest(tag, "GET", path, path, trace_id, parent_id, response.json())
    finally:
        output = stop_app(proc)
        stock_output = stop_app(stock) if stock is not None else ""
    stopped = time.time()
    for what, process, out in (("shop", proc, output), ("stock service", stock, stock_output)):
        assert process is not None and process.returncode == 0, f"{what} exited badly:\n{out}"
        assert "Traceback" not in out, out
    assert len(sent["movements"].body) == 20
    assert [p["cached"] for p in sent["catalog-batched"].body] == [False] * PAGE
    assert [p["cached"] for p in sent["catalog"].body] == [True] * PAGE
    assert len(sent["inventory"].body) == PAGE and len(sent["inventory-short"].body) == SHORT_PAGE
    wait_spans_stored()
    return ScenarioRun(sent, stopped)


# --- reading a trace's findings back from Jaeger ----------------------------------------------------


@dataclass(frozen=True)
class FindingEvent:
    span: JSpan  # the span the finding is shown on
    attributes: dict[str, Any]

    @property
    def detector(self) -> str:
        return str(self.attributes["otelperf.finding.detector"])


def trace_of(sent: SentRequest) -> tuple[list[JSpan], list[FindingEvent]]:
    """The trace's spans and its ``otelperf.finding`` events (conftest's JSpan carries no events)."""
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


def dump(spans: list[JSpan]) -> str:
    """One line per span, for assertion messages: what the test saw when it failed."""
    return "\n".join(
        f"  {s.span_id} <- {s.parent_span_id or '-':16} kind={s.kind} {s.name!r} "
        f"{ {k: v for k, v in s.attributes.items() if k.startswith(('db.', 'url.', 'otelperf.'))} }"
        for s in spans
    )


def only_finding(sent: SentRequest, detector: str) -> tuple[list[JSpan], FindingEvent]:
    spans, findings = trace_of(sent)
    assert [f.detector for f in findings] == [detector], (
        f"{sent.path}: findings {[(f.detector, f.attributes) for f in findings]}\n{dump(spans)}"
    )
    root = server_root(spans, sent)
    assert root.attributes["otelperf.findings.count"] == 1
    assert root.attributes["otelperf.findings.detectors"] in (detector, [detector])
    return spans, findings[0]


# --- the scenarios in Jaeger ------------------------------------------------------------------------


def test_ledger_history_is_a_slow_query_on_its_db_span_with_an_index_hint(scenario_run: ScenarioRun) -> None:
    spans, finding = only_finding(scenario_run.sent["movements"], "slow_query")
    ledger_reads = [
        s
        for s in spans
        if s.attributes.get("db.collection.name") == "stock_movements"
        and s.attributes.get("db.operation.name") == "SELECT"
    ]
    assert [s.span_id for s in ledger_reads] == [finding.span.span_id], dump(spans)
    assert finding.span.kind == 3  # the DB CLIENT span, not the request
    assert finding.attributes["otelperf.finding.count"] == 1
    assert finding.attributes["otelperf.finding.duration_ms"] >= 100.0
    statement = finding.attributes["otelperf.finding.statement"]
    assert "FROM stock_movements WHERE stock_movements.product_id = ?" in statement, statement
    assert finding.attributes["otelperf.finding.hint"] == (
        "check the plan: an index on stock_movements(product_id) may help"
    )


def test_catalog_reads_prices_one_get_each_an_n_plus_one_on_their_parent(scenario_run: ScenarioRun) -> None:
    spans, finding = only_finding(scenario_run.sent["catalog"], "n_plus_one")
    gets = [
        s
        for s in spans
        if s.attributes.get("db.system.name") == "redis" and s.attributes.get("db.operation.name") == "GET"
    ]
    assert len(gets) == PAGE, dump(spans)
    assert {s.parent_span_id for s in gets} == {finding.span.span_id}, dump(spans)
    assert finding.attributes["otelperf.finding.count"] == PAGE
    assert finding.attributes["otelperf.finding.statement"] == "GET ?"
    assert "MGET" in finding.attributes["otelperf.finding.hint"]
    assert "pipeline" in finding.attributes["otelperf.finding.hint"]


@pytest.mark.parametrize(
    "tag",
    [
        "inventory",  # the shop calling the stock service, another process
        "inventory-self",  # the shop calling its own stock endpoint: nested requests in one trace
    ],
)
def test_inventory_overview_calls_the_stock_service_once_per_product_an_http_n_plus_one(
    scenario_run: ScenarioRun, tag: str
) -> None:
    sent = scenario_run.sent[tag]
    spans, finding = only_finding(sent, "n_plus_one")
    root = server_root(spans, sent)
    calls = [s for s in spans if s.kind == 3 and "/internal/stock/" in str(s.attributes.get("url.full", ""))]
    assert len(calls) == PAGE, dump(spans)
    assert {s.parent_span_id for s in calls} == {finding.span.span_id} == {root.span_id}, dump(spans)
    assert finding.attributes["otelperf.finding.count"] == PAGE
    assert finding.attributes["otelperf.finding.statement"] == "GET 127.0.0.1/internal/stock/{id}"
    assert "batch endpoint" in finding.attributes["otelperf.finding.hint"]


@pytest.mark.parametrize("tag", ["product", "catalog-batched", "catalog-short", "inventory-short"])
def test_look_alikes_under_the_thresholds_have_no_finding(scenario_run: ScenarioRun, tag: str) -> None:
    sent = scenario_run.sent[tag]
    spans, findings = trace_of(sent)
    assert findings == [], f"{tag}: {[(f.detector, f.attributes) for f in findings]}\n{dump(spans)}"
    assert "otelperf.findings.count" not in server_root(spans, sent).attributes
    # Each look-alike did run the shape it imitates, just not enough of it to be a finding.
    redis_reads = [
        s.attributes.get("db.operation.name") for s in spans if s.attributes.get("db.system.name") == "redis"
    ]
    stock_calls = [
        s for s in spans if s.kind == 3 and "/internal/stock/" in str(s.attributes.get("url.full", ""))
    ]
    if tag == "catalog-batched":
        assert redis_reads.count("MGET") == 1 and "GET" not in redis_reads, dump(spans)
    elif tag == "catalog-short":
        assert redis_reads.count("GET") == SHORT_PAGE, dump(spans)
    elif tag == "inventory-short":
        assert len(stock_calls) == SHORT_PAGE, dump(spans)


# --- the same findings counted in Prometheus -------------------------------------------------------


def findings_series(run: ScenarioRun) -> dict[tuple[str, str], float]:
    """``otelperf_findings_total`` of this process, summed by (detector, route).

    This run's own series: one process, one ``service.instance.id``, so raw counter values are
    the counts (``rate()`` over a fresh series would read 0).
    """
    (instance,) = {s.resource["service.instance.id"] for s in jaeger_trace(run.sent["movements"].trace_id)}
    selector = f'{{job="{SERVICE}",service_instance_id="{instance}"}}'
    query = f"sum by (detector, route) (otelperf_findings_total{selector})"
    wanted = {("slow_query", SLOW_ROUTE), ("n_plus_one", CATALOG_ROUTE), ("n_plus_one", INVENTORY_ROUTE)}

    def series() -> dict[tuple[str, str], float]:
        body = get_json(f"{PROMETHEUS}/api/v1/query", {"query": query})
        return {
            (r["metric"].get("detector", ""), r["metric"].get("route", "")): float(r["value"][1])
            for r in body["data"]["result"]
        }

    def last_sample() -> float:
        body = get_json(
            f"{PROMETHEUS}/api/v1/query", {"query": f"max(timestamp(otelperf_findings_total{selector}))"}
        )
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    # The process exported every finding in its final flush, before it stopped; a scrape taken
    # after that (and the collector's 1 s batch) has them all, the look-alikes' too if they had any.
    poll(
        f"a scrape of {selector} after the shop stopped", last_sample, lambda t: t >= run.stopped + 1.5, 30.0
    )
    found: dict[tuple[str, str], float] = poll(query, series, lambda got: wanted <= got.keys(), 10.0)
    return found


def test_each_scenario_is_counted_once_in_prometheus(scenario_run: ScenarioRun) -> None:
    found = findings_series(scenario_run)
    # Only the three scenarios: the look-alikes count nothing. (The stock service is another job.)
    assert {k: v for k, v in found.items() if k[0] in ("slow_query", "n_plus_one")} == {
        ("slow_query", SLOW_ROUTE): 1.0,
        ("n_plus_one", CATALOG_ROUTE): 1.0,
        ("n_plus_one", INVENTORY_ROUTE): 1.0,
    }
