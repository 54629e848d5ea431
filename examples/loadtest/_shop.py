"""What every scenario shares: the shop's users, data and the otelperf plugin.

Every request is named by its route template (``name="/orders/{order_id}"``), so Locust's
statistics, the budget keys ("GET /orders/{order_id}") and the server's ``http.route`` agree.
Not a scenario itself: Locust skips files starting with ``_`` when given the directory.
"""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from typing import Any

from locust import HttpUser, between

import otelperf.loadtest.locust_plugin  # noqa: F401  (registers the budget thresholds and OTLP metrics)

USERNAMES = ("alice", "bob", "carol")  # seeded by examples/shop/db.py
PASSWORD = os.environ.get("SHOP_LOADTEST_PASSWORD", "shop-demo-password")  # the documented demo credential
CUSTOMERS = int(os.environ.get("SHOP_LOADTEST_CUSTOMERS", "50"))
PRODUCTS = int(os.environ.get("SHOP_LOADTEST_PRODUCTS", "100"))
SEARCH_TERMS = ("gift", "express", "Customer 1", "fragile", "zzz-no-match")
# A request that hangs counts as a failure after this long instead of holding its user forever.
REQUEST_TIMEOUT_S = float(os.environ.get("SHOP_LOADTEST_TIMEOUT_S", "10"))


class ShopUser(HttpUser):
    """Base of the scenarios' users: login/logout and a few shared reads."""

    abstract = True
    wait_time = between(0.05, 0.3)
    token = ""
    known_orders: list[int]

    def on_start(self) -> None:
        self.known_orders = []
        request = self.client.request

        def with_timeout(method: str, url: str, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", REQUEST_TIMEOUT_S)
            return request(method, url, **kwargs)

        self.client.request = with_timeout  # type: ignore[method-assign]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def login(self) -> bool:
        body = {"username": random.choice(USERNAMES), "password": PASSWORD}
        with self.client.post("/login", json=body, name="/login", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"login: {response.status_code} {response.text[:200]}")
                return False
            self.token = response.json()["token"]
        return True

    def logout(self) -> None:
        if self.token:
            self.client.post("/logout", headers=self.auth, name="/logout")
            self.token = ""

    def list_orders_eager(self) -> None:
        params = {"customer_id": random.randint(1, CUSTOMERS)}
        response = self.client.get("/orders-eager", params=params, name="/orders-eager")
        if response.ok:
            ids = [order["id"] for order in response.json()]
            self.known_orders = (self.known_orders + ids)[-200:]

    def order_id(self) -> int:
        return random.choice(self.known_orders) if self.known_orders else random.randint(1, 50)


def order_body() -> dict[str, Any]:
    products = random.sample(range(1, PRODUCTS + 1), random.randint(1, 3))
    return {
        "customer_id": random.randint(1, CUSTOMERS),
        "items": [{"product_id": p, "quantity": random.randint(1, 3)} for p in products],
        "note": "load test order",
    }


def product_body() -> dict[str, Any]:
    return {
        "sku": f"LT-{uuid.uuid4().hex[:12]}",
        "name": "load test product",
        "price_cents": random.randint(100, 10_000),
        "stock": random.randint(0, 50),
    }


def file_content(size: int) -> tuple[bytes, str]:
    content = os.urandom(size)
    return content, hashlib.sha256(content).hexdigest()
