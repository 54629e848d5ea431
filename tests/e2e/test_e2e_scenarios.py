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

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.e2e._backend import (
    FindingEvent,
    StackUrls,
    jaeger_trace,
    poll,
    prometheus_result,
    prometheus_value,
    server_root,
    trace_with_findings,
    wait_spans_stored,
)
from tests.e2e._shop import (
    SentRequest,
    ShopProcess,
    free_port,
    fresh_database,
    send_traced,
    shop_env,
    start_shop,
)

from otelperf.backends import Span

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
    with fresh_database(postgres_url, "shop_scenarios") as url:
        yield url


@dataclass(frozen=True)
class ScenarioRun:
    sent: dict[str, SentRequest]
    stopped: float  # unix seconds, after both processes stopped (and flushed)


@pytest.fixture(scope="module")
def scenario_run(stack: StackUrls, scenarios_database: str, redis_url: str) -> ScenarioRun:
    """The shop, and a second shop process as its stock service (as in production: another service).

    The stock process points its own inventory overview at itself, for the self-call case.
    """
    port, stock_port = free_port(), free_port()
    env = shop_env(
        postgres_url=scenarios_database,
        redis_url=redis_url,
        cache_prefix=f"e2e-scenarios-{uuid.uuid4().hex[:8]}:",  # fresh keys: the first read misses
        inventory_port=stock_port,
        SHOP_SEED_STOCK_MOVEMENTS=str(LEDGER_ROWS),
        OTELPERF_N_PLUS_ONE_MIN_MS="0",
        OTELPERF_BUDGETS_FILE="none",  # no latency budgets: each scenario has exactly its own finding
    )
    sent: dict[str, SentRequest] = {}
    shop = start_shop(service=SERVICE, env=env, port=port, ready_timeout=180.0)  # seeds the ledger
    stock: ShopProcess | None = None
    try:
        stock = start_shop(service=STOCK_SERVICE, env=env, port=stock_port)  # seeded: starts at once
        for base, plan in ((shop.url, PLAN), (stock.url, STOCK_PLAN)):
            with httpx.Client(base_url=base) as client:
                for tag, path, params in plan:
                    sent[tag] = send_traced(client, tag, path, params)
    finally:
        shop.stop()
        if stock is not None:
            stock.stop()
    stopped = time.time()
    for what, process in (("shop", shop), ("stock service", stock)):
        out = process.output if process is not None else ""
        assert process is not None and process.returncode == 0, f"{what} exited badly:\n{out}"
        assert "Traceback" not in out, out
    assert len(sent["movements"].body) == 20
    assert [p["cached"] for p in sent["catalog-batched"].body] == [False] * PAGE
    assert [p["cached"] for p in sent["catalog"].body] == [True] * PAGE
    assert len(sent["inventory"].body) == PAGE and len(sent["inventory-short"].body) == SHORT_PAGE
    wait_spans_stored()
    return ScenarioRun(sent, stopped)


# --- reading a trace's findings back from Jaeger ----------------------------------------------------


def dump(spans: list[Span]) -> str:
    """One line per span, for assertion messages: what the test saw when it failed."""
    return "\n".join(
        f"  {s.span_id} <- {s.parent_span_id or '-':16} kind={s.kind} {s.name!r} "
        f"{ {k: v for k, v in s.attributes.items() if k.startswith(('db.', 'url.', 'otelperf.'))} }"
        for s in spans
    )


def only_finding(sent: SentRequest, detector: str) -> tuple[list[Span], FindingEvent]:
    spans, findings = trace_with_findings(sent.trace_id)
    assert [f.detector for f in findings] == [detector], (
        f"{sent.path}: findings {[(f.detector, f.attributes) for f in findings]}\n{dump(spans)}"
    )
    root = server_root(spans, sent.parent_span_id)
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
    root = server_root(spans, sent.parent_span_id)
    calls = [s for s in spans if s.kind == 3 and "/internal/stock/" in str(s.attributes.get("url.full", ""))]
    assert len(calls) == PAGE, dump(spans)
    assert {s.parent_span_id for s in calls} == {finding.span.span_id} == {root.span_id}, dump(spans)
    assert finding.attributes["otelperf.finding.count"] == PAGE
    assert finding.attributes["otelperf.finding.statement"] == "GET 127.0.0.1/internal/stock/{id}"
    assert "batch endpoint" in finding.attributes["otelperf.finding.hint"]


@pytest.mark.parametrize("tag", ["product", "catalog-batched", "catalog-short", "inventory-short"])
def test_look_alikes_under_the_thresholds_have_no_finding(scenario_run: ScenarioRun, tag: str) -> None:
    sent = scenario_run.sent[tag]
    spans, findings = trace_with_findings(sent.trace_id)
    assert findings == [], f"{tag}: {[(f.detector, f.attributes) for f in findings]}\n{dump(spans)}"
    assert "otelperf.findings.count" not in server_root(spans, sent.parent_span_id).attributes
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
        return {
            (r.labels.get("detector", ""), r.labels.get("route", "")): r.value
            for r in prometheus_result(query)
        }

    def last_sample() -> float:
        value = prometheus_value(f"max(timestamp(otelperf_findings_total{selector}))")
        return 0.0 if value is None else value

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
