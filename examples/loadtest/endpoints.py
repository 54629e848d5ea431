"""Every critical read endpoint at a constant number of users (the capacity baseline).

otelperf loadtest --scenario endpoints --duration 60s --users 10
"""

from __future__ import annotations

import random

from _shop import PRODUCTS, SEARCH_TERMS, ShopUser
from locust import task


class EndpointsUser(ShopUser):
    def on_start(self) -> None:
        super().on_start()
        self.list_orders_eager()

    @task(4)
    def product(self) -> None:
        self.client.get(f"/products/{random.randint(1, PRODUCTS)}", name="/products/{product_id}")

    @task(6)
    def price(self) -> None:  # the cached hot read
        self.client.get(f"/products/{random.randint(1, 20)}/price", name="/products/{product_id}/price")

    @task(2)
    def products(self) -> None:
        self.client.get("/products", params={"limit": 20, "offset": random.randint(0, 80)}, name="/products")

    @task(4)
    def order(self) -> None:
        self.client.get(f"/orders/{self.order_id()}", name="/orders/{order_id}")

    @task(2)
    def orders_n_plus_one(self) -> None:
        self.client.get("/orders", params={"customer_id": random.randint(1, 50)}, name="/orders")

    @task(2)
    def orders_eager(self) -> None:
        self.list_orders_eager()

    @task(1)
    def search(self) -> None:  # a table scan on purpose
        self.client.get("/reports/search", params={"q": random.choice(SEARCH_TERMS)}, name="/reports/search")

    @task(2)
    def inventory(self) -> None:  # an outgoing HTTP call inside the request
        self.client.get(f"/inventory/{random.randint(1, PRODUCTS)}", name="/inventory/{product_id}")
