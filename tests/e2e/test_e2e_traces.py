"""Traces through the real path: app → OTLP → Collector → Jaeger, read back with Jaeger's /api/v3.

Every request the test made is one trace (the test chose its id), rooted at one SERVER span named
by route, with its SQL (sanitized), Redis and outgoing HTTP spans parented where they ran, and the
service's resource attributes. Also: the search API finds them, code mode (``otelperf.init()`` in
the app) works the same, and no span the app exported is missing in Jaeger.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from examples.shop.config import Config
from tests.e2e._backend import StackUrls, jaeger_search, jaeger_trace, poll, wait_spans_stored
from tests.e2e._shop import shop_env, start_shop, traced_request
from tests.e2e.conftest import SERVICE, ShopRun

import otelperf
from otelperf.backends import Span

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SERVER, CLIENT = 2, 3
# asyncpg's placeholders as the SQLAlchemy instrumentation records them: `$1::INTEGER`.
PLACEHOLDER = re.compile(r"\$\d+")


def by_id(spans: list[Span]) -> dict[str, Span]:
    return {s.span_id: s for s in spans}


def root_server_span(spans: list[Span], trace_id: str, parent_span_id: str) -> Span:
    """The one span of the trace whose parent is not in it: the SERVER span, child of our traceparent."""
    assert {s.trace_id for s in spans} == {trace_id}
    ids = by_id(spans)
    assert len(ids) == len(spans), "duplicate span ids: a span was stored twice"
    roots = [s for s in spans if s.parent_span_id not in ids]
    assert len(roots) == 1, f"expected one root, got {[(r.name, r.kind) for r in roots]}"
    root = roots[0]
    assert root.kind == SERVER
    assert root.parent_span_id == parent_span_id, "the traceparent we sent was not continued"
    return root


def children(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s.parent_span_id == parent.span_id]


def sql_spans(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.attributes.get("db.system.name") == "postgresql"]


def redis_spans(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.attributes.get("db.system.name") == "redis"]


def assert_sanitized_sql(spans: list[Span], *literals: object) -> None:
    for span in spans:
        assert span.kind == CLIENT
        text = span.attributes["db.query.text"]
        for literal in literals:
            assert str(literal) not in text, f"literal {literal!r} in {text!r}"
        if " WHERE " in text:
            assert PLACEHOLDER.search(text), f"no placeholder in {text!r}"


@pytest.fixture(scope="module")
def traces(shop_run: ShopRun) -> dict[str, list[Span]]:
    wait_spans_stored()
    return {tag: jaeger_trace(sent.trace_id) for tag, sent in shop_run.requests.items()}


def test_every_request_is_one_trace_rooted_at_its_server_span(
    shop_run: ShopRun, traces: dict[str, list[Span]]
) -> None:
    for tag, sent in shop_run.requests.items():
        spans = traces[tag]
        root = root_server_span(spans, sent.trace_id, sent.parent_span_id)
        assert root.name == f"{sent.method} {sent.route}", tag
        assert root.attributes["http.route"] == sent.route
        assert root.attributes["http.request.method"] == sent.method
        assert root.attributes["http.response.status_code"] == 200
        for span in spans:
            assert span.resource["service.name"] == SERVICE
            assert span.resource["service.version"] == "1.2.3"
            assert span.resource["deployment.environment.name"] == "e2e"
        # One process produced the trace (the inventory call goes back into the same app).
        assert len({s.resource["service.instance.id"] for s in spans}) == 1


def test_n_plus_one_list_has_one_select_per_order_under_the_server_span(
    shop_run: ShopRun, traces: dict[str, list[Span]]
) -> None:
    sent = shop_run.requests["list"]
    spans = traces["list"]
    root = root_server_span(spans, sent.trace_id, sent.parent_span_id)
    selects = [s for s in sql_spans(spans) if s.attributes["db.operation.name"] == "SELECT"]
    assert len(selects) == 1 + shop_run.customer_orders
    assert all(s.parent_span_id == root.span_id for s in selects)
    assert [s.attributes["db.collection.name"] for s in selects].count(
        "order_items"
    ) == shop_run.customer_orders
    for span in selects:
        assert span.attributes["db.namespace"] == shop_run.database
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == 5433
    assert_sanitized_sql(selects)


def test_order_by_id_sql_is_sanitized(shop_run: ShopRun, traces: dict[str, list[Span]]) -> None:
    for tag, order_id in (("order-1", shop_run.order_ids[0]), ("order-2", shop_run.order_ids[1])):
        sent = shop_run.requests[tag]
        spans = traces[tag]
        root = root_server_span(spans, sent.trace_id, sent.parent_span_id)
        sql = sql_spans(spans)
        assert sql, f"{tag}: no SQL span"
        assert all(s.parent_span_id == root.span_id for s in sql)
        assert_sanitized_sql(sql, order_id)


def _price_root(shop_run: ShopRun, traces: dict[str, list[Span]], tag: str) -> tuple[Span, list[Span]]:
    sent = shop_run.requests[tag]
    return root_server_span(traces[tag], sent.trace_id, sent.parent_span_id), traces[tag]


def test_price_lookups_are_redis_spans_miss_then_hit(
    shop_run: ShopRun, traces: dict[str, list[Span]]
) -> None:
    miss_root, miss = _price_root(shop_run, traces, "price-miss")
    hit_root, hit = _price_root(shop_run, traces, "price-hit")

    miss_redis = redis_spans(miss)
    assert [s.attributes["db.operation.name"] for s in miss_redis] == ["GET", "SET"]
    assert miss_redis[0].attributes["otelperf.cache.hit"] is False
    assert len(sql_spans(miss)) == 1  # the price came from PostgreSQL...
    hit_redis = redis_spans(hit)
    assert [s.attributes["db.operation.name"] for s in hit_redis] == ["GET"]
    assert hit_redis[0].attributes["otelperf.cache.hit"] is True
    assert sql_spans(hit) == []  # ...and then from Redis alone

    for root, spans in ((miss_root, miss_redis), (hit_root, hit_redis)):
        for span in spans:
            assert span.kind == CLIENT
            assert span.parent_span_id == root.span_id
            assert span.attributes["server.port"] == 6380
            # The key (prefix and product id) is a literal: only the command is kept.
            assert shop_run.cache_prefix not in span.attributes["db.query.text"]
            assert "price" not in span.attributes["db.query.text"]


def test_outgoing_http_call_parents_the_stock_services_server_span(
    shop_run: ShopRun, traces: dict[str, list[Span]]
) -> None:
    sent = shop_run.requests["inventory"]
    spans = traces["inventory"]
    root = root_server_span(spans, sent.trace_id, sent.parent_span_id)
    http_clients = [
        s for s in children(spans, root) if s.kind == CLIENT and "http.request.method" in s.attributes
    ]
    assert len(http_clients) == 1
    client = http_clients[0]
    assert client.attributes["url.full"].endswith("/internal/stock/4")
    assert client.attributes["http.response.status_code"] == 200
    inner = children(spans, client)
    assert [(s.name, s.kind) for s in inner] == [("GET /internal/stock/{product_id}", SERVER)]
    stock_sql = sql_spans(children(spans, inner[0]))
    assert len(stock_sql) == 1
    assert_sanitized_sql(stock_sql)


def test_login_spans_carry_no_password(shop_run: ShopRun, traces: dict[str, list[Span]]) -> None:
    from examples.shop.db import SEED_PASSWORD

    sent = shop_run.requests["login"]
    spans = traces["login"]
    root = root_server_span(spans, sent.trace_id, sent.parent_span_id)
    operations = [
        (s.attributes["db.operation.name"], s.attributes["db.collection.name"]) for s in sql_spans(spans)
    ]
    assert operations == [("SELECT", "users"), ("INSERT", "user_sessions")]
    assert all(s.parent_span_id == root.span_id for s in sql_spans(spans))
    token = sent.body["token"]
    for span in spans:
        for value in span.attributes.values():
            assert SEED_PASSWORD not in str(value) and token not in str(value)


def test_search_by_service_finds_every_trace(stack: StackUrls, shop_run: ShopRun) -> None:
    wanted = {sent.trace_id for sent in shop_run.requests.values()}
    found = poll(
        f"traces of {SERVICE} via /api/v3/traces search",
        lambda: jaeger_search(SERVICE, shop_run.started, shop_run.finished),
        lambda spans: wanted <= {s.trace_id for s in spans},
        timeout=20,
    )
    assert {s.resource["service.name"] for s in found} == {SERVICE}


def test_code_mode_app_reports_as_shop(stack: StackUrls, tmp_path: Path) -> None:
    """SHOP_OTELPERF_INIT=1: the app calls otelperf.init(service_name="shop") itself, under plain uvicorn."""
    env = shop_env(SHOP_OTELPERF_INIT="1", DATABASE_URL=f"sqlite:///{tmp_path / 'shop.db'}")
    with start_shop(service=None, env=env) as shop, httpx.Client(base_url=shop.url) as client:
        trace_id, parent_id, _ = traced_request(client, "GET", "/products/3/price")
    assert "Traceback" not in shop.output, shop.output
    jaeger_trace(trace_id)
    wait_spans_stored()
    spans = jaeger_trace(trace_id)
    root = root_server_span(spans, trace_id, parent_id)
    assert root.name == "GET /products/{product_id}/price"
    assert {s.resource["service.name"] for s in spans} == {"shop"}
    # Code mode also instruments the in-process price cache (no REDIS_URL here).
    cache = [s for s in spans if s.attributes.get("otelperf.cache.name") == "shop.prices"]
    assert cache and cache[0].attributes["otelperf.cache.hit"] is False


# --- nothing lost ----------------------------------------------------------------------------------


@pytest.fixture
def fresh_config(shop_database: tuple[str, str], redis_url: str) -> Config:
    """The session's PostgreSQL database (create/seed is idempotent) and Redis, with fresh cache keys."""
    return replace(
        Config(password_iterations=1_000, seed_orders=60),
        redis_url=redis_url,
        cache_prefix=f"e2e-count-{uuid.uuid4().hex[:8]}:",
        inventory_url="http://shop.test/internal/stock/{product_id}",
    ).with_database_url(shop_database[1])


async def test_every_span_the_app_exported_is_in_jaeger(stack: StackUrls, fresh_config: Config) -> None:
    """In process, so the exporter's own count is readable: spans exported == spans Jaeger holds."""
    from examples.shop.app import create_app

    service = f"shop-e2e-count-{uuid.uuid4().hex[:8]}"  # only this test's spans carry this name
    began = time.time()
    runtime = otelperf.init(
        service_name=service, endpoint="http://127.0.0.1:4318", schedule_delay=0.2, metric_export_interval=60
    )
    try:
        app = create_app(fresh_config)
        app.state.inventory_transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as client,
        ):
            for path in ("/orders?customer_id=2", "/orders/3", "/products/5/price", "/products/5/price"):
                assert (await client.get(path)).status_code == 200
            assert (await client.get("/inventory/4")).status_code == 200
    finally:
        assert otelperf.shutdown(timeout=10), "otelperf did not flush within 10 s"
    delivery = runtime.delivery
    assert delivery is not None
    exported, dropped = delivery.spans_exported, delivery.spans_dropped
    assert dropped == 0, delivery.dropped
    assert exported > 20  # startup DDL/seed + the requests: the count is not trivially small
    # The flush returned, so the collector has accepted every span; wait until it passed them on.
    wait_spans_stored()
    spans = jaeger_search(service, began, time.time())
    assert len(spans) == exported
    assert len({(s.trace_id, s.span_id) for s in spans}) == exported
