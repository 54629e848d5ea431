"""The example service (examples/shop) under otelperf, driven in-process, as a user would see it.

Runs twice: on SQLite with the in-process cache, and on the real PostgreSQL + Redis
(``make services``). The app itself does not import otelperf; the capture fixture instruments it.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from examples.shop import routes_orders
from examples.shop.app import create_app
from examples.shop.cache import InProcessCache
from examples.shop.config import Config
from examples.shop.db import SEED_PASSWORD
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import otelperf
from otelperf.config import Settings
from otelperf.detectors._api import TraceView
from otelperf.detectors.n_plus_one import NPlusOneDetector
from otelperf.testing import Capture

BASE_URL = "http://shop.test"
# Small seed and cheap hashing: these tests check behaviour and spans, not cost.
TEST_CONFIG = Config(
    seed_orders=60,
    password_iterations=1_000,
    inventory_url=BASE_URL + "/internal/stock/{product_id}",
)


@pytest.fixture
async def fresh_postgres_db(postgres_url: str) -> AsyncIterator[str]:
    """A database of its own, so the shop's tables never meet other tests' tables."""
    name = f"shop_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(
        postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1), isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
def shop_config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    if request.param == "sqlite":
        return replace(
            TEST_CONFIG, database_url=f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}", cache_prefix=prefix
        )
    db_url: str = request.getfixturevalue("fresh_postgres_db")
    redis_url: str = request.getfixturevalue("redis_url")
    return replace(TEST_CONFIG, redis_url=redis_url, cache_prefix=prefix).with_database_url(db_url)


@pytest.fixture
async def shop(shop_config: Config, otelperf_capture: Capture) -> AsyncIterator[httpx.AsyncClient]:
    """The app, started (lifespan run) after otelperf, behind an in-process HTTP client."""
    app = create_app(shop_config)
    app.state.inventory_transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        if isinstance(app.state.cache, InProcessCache):
            # What a user does for an in-process cache; Redis needs nothing.
            app.state.cache.store = otelperf.instrument_cache(app.state.cache.store, name="shop.prices")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
            otelperf_capture.clear()  # startup's create/seed statements are not what we assert on
            yield client


# --- helpers ---------------------------------------------------------------------------------------


def server_spans(cap: Capture, method: str, route: str) -> list[ReadableSpan]:
    """SERVER spans of one route, in the order the requests started."""
    found = [
        s
        for s in cap.spans
        if s.kind == SpanKind.SERVER
        and (s.attributes or {}).get("http.route") == route
        and (s.attributes or {}).get("http.request.method") == method
    ]
    return sorted(found, key=lambda s: s.start_time or 0)


def server_span(cap: Capture, method: str, route: str) -> ReadableSpan:
    found = server_spans(cap, method, route)
    assert len(found) == 1, (
        f"expected one SERVER span for {method} {route}, got {[s.name for s in cap.spans]}"
    )
    return found[0]


def descendants(cap: Capture, root: ReadableSpan) -> list[ReadableSpan]:
    children: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in cap.spans:
        if span.parent is not None and span.context.trace_id == root.context.trace_id:
            children[span.parent.span_id].append(span)
    out, todo = [], [root.context.span_id]
    while todo:
        for child in children.pop(todo.pop(), []):
            out.append(child)
            todo.append(child.context.span_id)
    return out


def selects_under(cap: Capture, root: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in descendants(cap, root) if (s.attributes or {}).get("db.operation.name") == "SELECT"]


def cache_hits_under(cap: Capture, root: ReadableSpan) -> list[object]:
    return [
        (s.attributes or {})["otelperf.cache.hit"]
        for s in descendants(cap, root)
        if "otelperf.cache.hit" in (s.attributes or {})
    ]


async def login(client: httpx.AsyncClient) -> dict[str, str]:
    r = await client.post("/login", json={"username": "alice", "password": SEED_PASSWORD})
    assert r.status_code == 200, r.text
    return {"authorization": f"Bearer {r.json()['token']}"}


# --- tests ------------------------------------------------------------------------------------------


async def test_n_plus_one_list_issues_one_select_per_order_and_eager_list_two(
    shop: httpx.AsyncClient, otelperf_capture: Capture
) -> None:
    customer_id = await _customer_with_orders(shop, at_least=3)
    otelperf_capture.clear()

    lazy = await shop.get("/orders", params={"customer_id": customer_id})
    eager = await shop.get("/orders-eager", params={"customer_id": customer_id})

    assert lazy.status_code == eager.status_code == 200
    assert lazy.json() == eager.json()
    n = len(lazy.json())
    assert n >= 3
    assert len(selects_under(otelperf_capture, server_span(otelperf_capture, "GET", "/orders"))) == 1 + n
    assert len(selects_under(otelperf_capture, server_span(otelperf_capture, "GET", "/orders-eager"))) == 2


async def test_the_n_plus_one_list_is_told_its_relationship_its_lines_and_the_exact_fix(
    shop: httpx.AsyncClient, otelperf_capture: Capture
) -> None:
    """The route's loop runs ``select(OrderItem).where(OrderItem.order_id == order.id)`` per order:
    the finding names ``Order.items``, the loop's line and the line of the orders' query."""
    otelperf_capture.clear()
    assert (await shop.get("/orders", params={"limit": 8})).status_code == 200
    root = server_span(otelperf_capture, "GET", "/orders")
    spans = [root, *descendants(otelperf_capture, root)]
    # The count rule only: on a warm local database the loop's time depends on the machine's load.
    (finding,) = NPlusOneDetector(Settings(n_plus_one_min_ms=0), None).analyze(TraceView(root, spans))
    source = Path(routes_orders.__file__)
    lines = source.read_text().splitlines()
    parents_line = 1 + next(
        i for i, line in enumerate(lines) if "orders = (await session.scalars(_orders_query(" in line
    )
    loop_line = 1 + next(
        i for i, line in enumerate(lines) if "await session.scalars(" in line and i > parents_line
    )
    where = os.path.relpath(source)
    assert finding.count == 8
    assert finding.details["relationship"] == "Order.items"
    assert finding.details["call_site"] == f"{where}:{loop_line} in list_orders_n_plus_one()"
    assert finding.details["parent_call_site"] == f"{where}:{parents_line} in list_orders_n_plus_one()"
    assert finding.hint.startswith(
        f"add `.options(selectinload(Order.items))` to the query at {where}:{parents_line} in"
        " list_orders_n_plus_one() and read `.items` instead of the 8 queries at"
    )


async def _customer_with_orders(client: httpx.AsyncClient, at_least: int) -> int:
    for customer_id in range(1, 51):
        r = await client.get("/orders-eager", params={"customer_id": customer_id})
        if len(r.json()) >= at_least:
            return customer_id
    raise AssertionError(f"the seed has no customer with {at_least} orders")


async def test_price_cache_misses_then_hits(shop: httpx.AsyncClient, otelperf_capture: Capture) -> None:
    first = await shop.get("/products/7/price")
    second = await shop.get("/products/7/price")

    assert first.json()["cached"] is False
    assert second.json() == {**first.json(), "cached": True}
    first_server, second_server = server_spans(otelperf_capture, "GET", "/products/{product_id}/price")
    assert cache_hits_under(otelperf_capture, first_server) == [False]
    assert cache_hits_under(otelperf_capture, second_server) == [True]
    assert len(selects_under(otelperf_capture, first_server)) == 1
    assert selects_under(otelperf_capture, second_server) == []  # served from the cache alone


async def test_upload_then_download_round_trips(shop: httpx.AsyncClient) -> None:
    payload = os.urandom(200_000)
    anonymous = await shop.post("/files", files={"file": ("a.bin", payload, "application/octet-stream")})
    assert anonymous.status_code == 401

    headers = await login(shop)
    up = await shop.post(
        "/files", files={"file": ("report 1.pdf", payload, "application/pdf")}, headers=headers
    )
    assert up.status_code == 201, up.text
    assert up.json()["size"] == len(payload)

    down = await shop.get(f"/files/{up.json()['id']}")
    assert down.status_code == 200
    assert down.content == payload
    assert down.headers["content-type"] == "application/pdf"
    assert "report%201.pdf" in down.headers["content-disposition"]


async def test_login_write_logout(shop: httpx.AsyncClient, otelperf_capture: Capture) -> None:
    wrong = await shop.post("/login", json={"username": "alice", "password": "nope"})
    unknown = await shop.post("/login", json={"username": "mallory", "password": SEED_PASSWORD})
    assert wrong.status_code == unknown.status_code == 401

    headers = await login(shop)
    created = await shop.post(
        "/orders", json={"customer_id": 1, "items": [{"product_id": 3, "quantity": 2}]}, headers=headers
    )
    assert created.status_code == 201, created.text
    assert (await shop.get(f"/orders/{created.json()['id']}")).json() == created.json()

    assert (await shop.post("/logout", headers=headers)).status_code == 204
    after = await shop.post(
        "/orders", json={"customer_id": 1, "items": [{"product_id": 3, "quantity": 1}]}, headers=headers
    )
    assert after.status_code == 401
    assert [s.name for s in server_spans(otelperf_capture, "POST", "/login")] == ["POST /login"] * 3


async def test_search_sees_new_orders(shop: httpx.AsyncClient) -> None:
    marker = uuid.uuid4().hex
    headers = await login(shop)
    before = (await shop.get("/reports/search", params={"q": marker})).json()
    await shop.post(
        "/orders",
        json={"customer_id": 2, "items": [{"product_id": 1, "quantity": 1}], "note": marker},
        headers=headers,
    )
    after = (await shop.get("/reports/search", params={"q": marker})).json()
    assert before["total_matches"] == 0
    assert after["total_matches"] == 1 and after["results"][0]["note"] == marker


async def test_inventory_call_is_a_client_span_propagating_the_trace(
    shop: httpx.AsyncClient, otelperf_capture: Capture
) -> None:
    r = await shop.get("/inventory/4")
    assert r.status_code == 200, r.text
    outer = server_span(otelperf_capture, "GET", "/inventory/{product_id}")
    inner = server_span(otelperf_capture, "GET", "/internal/stock/{product_id}")
    clients = [
        s
        for s in descendants(otelperf_capture, outer)
        if s.kind == SpanKind.CLIENT and "http.request.method" in (s.attributes or {})
    ]
    assert len(clients) == 1
    # traceparent went out with the call: the stock service's SERVER span is the CLIENT span's child.
    assert inner.parent is not None and inner.parent.span_id == clients[0].context.span_id
    assert r.json()["stock"] == (await shop.get("/internal/stock/4")).json()["stock"]


async def test_catalog_reads_one_price_per_product_and_the_batched_twin_fills_the_cache(
    shop: httpx.AsyncClient, otelperf_capture: Capture
) -> None:
    batched = await shop.get("/catalog-batched", params={"limit": 6})
    page = await shop.get("/catalog", params={"limit": 6})

    assert [p["cached"] for p in batched.json()] == [False] * 6
    assert page.json() == [{**p, "cached": True} for p in batched.json()]
    catalog = server_span(otelperf_capture, "GET", "/catalog")
    assert cache_hits_under(otelperf_capture, catalog) == [True] * 6  # one lookup per product


async def test_inventory_overview_calls_the_stock_service_once_per_product(
    shop: httpx.AsyncClient, otelperf_capture: Capture
) -> None:
    r = await shop.get("/inventory", params={"limit": 6, "offset": 2})
    assert r.status_code == 200, r.text
    assert [s["product_id"] for s in r.json()] == [3, 4, 5, 6, 7, 8]
    outer = server_span(otelperf_capture, "GET", "/inventory")
    calls = [s for s in descendants(otelperf_capture, outer) if s.kind == SpanKind.CLIENT and s.name == "GET"]
    assert len(calls) == 6
    assert len(server_spans(otelperf_capture, "GET", "/internal/stock/{product_id}")) == 6


async def test_stock_movements_are_a_products_latest_from_the_ledger(
    shop: httpx.AsyncClient, otelperf_capture: Capture
) -> None:
    r = await shop.get("/inventory/5/movements", params={"limit": 5})
    assert r.status_code == 200, r.text
    movements = r.json()
    assert len(movements) == 5
    assert [m["created_at"] for m in movements] == sorted((m["created_at"] for m in movements), reverse=True)
    root = server_span(otelperf_capture, "GET", "/inventory/{product_id}/movements")
    (select,) = selects_under(otelperf_capture, root)
    assert (select.attributes or {}).get("db.collection.name") == "stock_movements"
