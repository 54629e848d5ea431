"""End-to-end fixtures: the real backend (collector, Jaeger, Prometheus) and one run of the example shop.

The ``stack`` fixture starts the stack once per session (or reuses a running one) and stops it at
the end only when this session started it. ``shop_run`` runs ``examples/shop`` under
``otelperf run`` against the real PostgreSQL and Redis, sends a known set of requests (each with a
W3C ``traceparent`` the test made, so every trace id is known), stops the app with SIGINT so it
flushes, and returns what was sent; the trace and the metric tests both read that one run.

The plumbing the test modules share lives in ``_shop.py`` (starting and stopping the shop) and
``_backend.py`` (reading Jaeger and Prometheus back).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import skip_or_fail
from tests.e2e._backend import StackUrls
from tests.e2e._shop import SentRequest, free_port, fresh_database, shop_env, start_shop, traced_request

from otelperf.stack import Stack, StackError
from otelperf.stack.components import CORE, find_binary

# StackUrls is re-exported: test modules annotate the `stack` fixture with it.
__all__ = ["SERVICE", "SentRequest", "ShopRun", "StackUrls"]

SERVICE = "shop-e2e-run"


@pytest.fixture(scope="session")
def stack() -> Iterator[StackUrls]:
    missing = []
    for component in CORE:
        try:
            find_binary(component, os.environ)
        except StackError as exc:
            missing.append(str(exc))
    if missing:
        skip_or_fail("end-to-end tests need the stack binaries:\n" + "\n".join(missing))
    backend = Stack(with_alertmanager=False)
    try:
        result = backend.up(timeout=90)
    except StackError as exc:
        pytest.fail(f"cannot start the otelperf stack for the end-to-end tests:\n{exc}", pytrace=False)
    try:
        yield StackUrls()
    finally:
        if result.started:  # someone else's stack (`otelperf stack up`) stays up
            backend.down()


@dataclass
class ShopRun:
    """What the test sent to the shop under `otelperf run`, and when."""

    requests: dict[str, SentRequest]
    started: float  # unix seconds, before the app started
    finished: float  # unix seconds, after it stopped
    database: str
    cache_prefix: str
    customer_orders: int  # orders of the customer the N+1 list was asked for
    order_ids: list[int] = field(default_factory=list)
    output: str = ""

    def sent_to(self, route: str) -> int:
        return sum(1 for r in self.requests.values() if r.route == route)


@pytest.fixture(scope="session")
def shop_database(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database for the session's shop runs: (its name, its URL); dropped after."""
    with fresh_database(postgres_url, "shop_e2e") as url:
        yield url.rsplit("/", 1)[1], url


@pytest.fixture(scope="session")
def shop_run(stack: StackUrls, shop_database: tuple[str, str], redis_url: str) -> ShopRun:
    from examples.shop.db import SEED_PASSWORD

    database, db_url = shop_database
    port = free_port()
    prefix = f"e2e-{uuid.uuid4().hex[:8]}:"  # a fresh price key: the first lookup must miss
    env = shop_env(postgres_url=db_url, redis_url=redis_url, cache_prefix=prefix, inventory_port=port)
    started = time.time()
    requests: dict[str, SentRequest] = {}
    run_options = ["--service-version", "1.2.3", "--environment", "e2e"]
    with start_shop(service=SERVICE, env=env, port=port, run_options=run_options) as shop:
        with psycopg.connect(db_url) as conn:  # the app seeded it; pick data straight from the source
            row = conn.execute(
                "SELECT customer_id, count(*) FROM orders GROUP BY customer_id HAVING count(*) >= 2 "
                "ORDER BY count(*) DESC, customer_id LIMIT 1"
            ).fetchone()
            order_ids = [
                r[0] for r in conn.execute("SELECT id FROM orders WHERE id > 30 ORDER BY id LIMIT 2")
            ]
        assert row is not None and len(order_ids) == 2, "the shop's seed has no orders"
        customer_id, customer_orders = int(row[0]), int(row[1])
        plan: list[tuple[str, str, str, str, dict[str, Any]]] = [
            ("list", "GET", "/orders", "/orders", {"params": {"customer_id": customer_id}}),
            ("order-1", "GET", f"/orders/{order_ids[0]}", "/orders/{order_id}", {}),
            ("order-2", "GET", f"/orders/{order_ids[1]}", "/orders/{order_id}", {}),
            ("price-miss", "GET", "/products/7/price", "/products/{product_id}/price", {}),
            ("price-hit", "GET", "/products/7/price", "/products/{product_id}/price", {}),
            ("inventory", "GET", "/inventory/4", "/inventory/{product_id}", {}),
            (
                "login",
                "POST",
                "/login",
                "/login",
                {"json": {"username": "alice", "password": SEED_PASSWORD}},
            ),
        ]
        with httpx.Client(base_url=shop.url) as client:
            for tag, method, path, route, kwargs in plan:
                trace_id, parent_id, response = traced_request(client, method, path, **kwargs)
                requests[tag] = SentRequest(tag, method, path, route, trace_id, parent_id, response.json())
    output = shop.output
    assert shop.returncode == 0, f"shop exited with {shop.returncode}:\n{output}"
    assert "Traceback" not in output, output
    assert requests["price-miss"].body["cached"] is False and requests["price-hit"].body["cached"] is True
    return ShopRun(
        requests=requests,
        started=started,
        finished=time.time(),
        database=database,
        cache_prefix=prefix,
        customer_orders=min(customer_orders, 20),  # the endpoint's default limit
        order_ids=order_ids,
        output=output,
    )
