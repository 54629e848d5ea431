"""Create, read, update and delete orders and products, as logged-in users.

    otelperf loadtest --scenario crud --duration 60s --users 10

Each flow deletes what it created, so a long run does not grow the tables it measures.
"""

from __future__ import annotations

from _shop import ShopUser, order_body, product_body
from locust import task


class CrudUser(ShopUser):
    def on_start(self) -> None:
        super().on_start()
        self.login()

    def on_stop(self) -> None:
        self.logout()

    @task(3)
    def order_lifecycle(self) -> None:
        response = self.client.post("/orders", json=order_body(), headers=self.auth, name="/orders")
        if response.status_code != 201:
            return
        order_id = response.json()["id"]
        path = f"/orders/{order_id}"
        self.client.get(path, name="/orders/{order_id}")
        self.client.patch(path, json={"status": "paid"}, headers=self.auth, name="/orders/{order_id}")
        self.client.delete(path, headers=self.auth, name="/orders/{order_id}")

    @task(1)
    def product_lifecycle(self) -> None:
        body = product_body()
        response = self.client.post("/products", json=body, headers=self.auth, name="/products")
        if response.status_code != 201:
            return
        path = f"/products/{response.json()['id']}"
        self.client.get(path, name="/products/{product_id}")
        body["price_cents"] += 1
        self.client.put(path, json=body, headers=self.auth, name="/products/{product_id}")
        self.client.delete(path, headers=self.auth, name="/products/{product_id}")
