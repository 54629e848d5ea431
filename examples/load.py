"""A small load generator for the shop (loopback only; k6 scripts come later).

    python examples/load.py --duration 20 --concurrency 8 [--requests 5000] [--base-url http://127.0.0.1:8000]

Each worker logs in once, then picks endpoints from a weighted mix (reads dominate, like a real
shop). Stops at the duration or the request budget, whichever comes first, and prints per-endpoint
counts, errors and p50/p95 latency.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
USERNAME, PASSWORD = "alice", "shop-demo-password"  # seeded by examples/shop/db.py
CUSTOMERS, PRODUCTS = 50, 100


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    issued: int = 0

    def record(self, name: str, seconds: float, ok: bool) -> None:
        self.latencies[name].append(seconds)
        if not ok:
            self.errors[name] += 1


class Worker:
    def __init__(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        self.client = client
        self.rng = rng
        self.token = ""
        self.order_ids: list[int] = []
        self.file_ids: list[int] = []

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    async def login(self) -> httpx.Response:
        r = await self.client.post("/login", json={"username": USERNAME, "password": PASSWORD})
        if r.status_code == 200:
            self.token = r.json()["token"]
        return r

    async def logout_login(self) -> httpx.Response:
        r = await self.client.post("/logout", headers=self.auth)
        await self.login()
        return r

    async def list_n_plus_one(self) -> httpx.Response:
        return await self.client.get("/orders", params={"customer_id": self.rng.randint(1, CUSTOMERS)})

    async def list_eager(self) -> httpx.Response:
        return await self.client.get("/orders-eager", params={"customer_id": self.rng.randint(1, CUSTOMERS)})

    async def get_order(self) -> httpx.Response:
        order_id = self.rng.choice(self.order_ids) if self.order_ids else self.rng.randint(1, 300)
        return await self.client.get(f"/orders/{order_id}")

    async def create_order(self) -> httpx.Response:
        items = [
            {"product_id": p, "quantity": self.rng.randint(1, 3)}
            for p in self.rng.sample(range(1, PRODUCTS + 1), self.rng.randint(1, 4))
        ]
        body = {"customer_id": self.rng.randint(1, CUSTOMERS), "items": items, "note": "load gift express"}
        r = await self.client.post("/orders", json=body, headers=self.auth)
        if r.status_code == 201:
            self.order_ids.append(r.json()["id"])
        return r

    async def update_order(self) -> httpx.Response:
        if not self.order_ids:
            return await self.create_order()
        order_id = self.rng.choice(self.order_ids)
        return await self.client.patch(f"/orders/{order_id}", json={"status": "paid"}, headers=self.auth)

    async def search(self) -> httpx.Response:
        q = self.rng.choice(("gift", "express", "weekend", "Customer 1", "zzz-nothing"))
        return await self.client.get("/reports/search", params={"q": q})

    async def products(self) -> httpx.Response:
        return await self.client.get("/products", params={"limit": 20, "offset": self.rng.randint(0, 80)})

    async def product(self) -> httpx.Response:
        return await self.client.get(f"/products/{self.rng.randint(1, PRODUCTS)}")

    async def price(self) -> httpx.Response:
        # A skewed key set so that the cache actually hits.
        return await self.client.get(f"/products/{int(self.rng.paretovariate(1.2)) % PRODUCTS + 1}/price")

    async def upload(self) -> httpx.Response:
        payload = self.rng.randbytes(self.rng.choice((1_024, 16_384, 131_072)))
        files = {"file": ("report.bin", payload, "application/octet-stream")}
        r = await self.client.post("/files", files=files, headers=self.auth)
        if r.status_code == 201:
            self.file_ids.append(r.json()["id"])
        return r

    async def download(self) -> httpx.Response:
        if not self.file_ids:
            return await self.upload()
        return await self.client.get(f"/files/{self.rng.choice(self.file_ids)}")

    async def inventory(self) -> httpx.Response:
        return await self.client.get(f"/inventory/{self.rng.randint(1, PRODUCTS)}")


# (label, weight, action): labels are the route templates, so they line up with the SERVER spans.
MIX: list[tuple[str, int, Callable[[Worker], Awaitable[httpx.Response]]]] = [
    ("GET /orders (N+1)", 12, Worker.list_n_plus_one),
    ("GET /orders-eager", 12, Worker.list_eager),
    ("GET /orders/{order_id}", 8, Worker.get_order),
    ("POST /orders", 6, Worker.create_order),
    ("PATCH /orders/{order_id}", 3, Worker.update_order),
    ("GET /reports/search", 6, Worker.search),
    ("GET /products", 6, Worker.products),
    ("GET /products/{product_id}", 8, Worker.product),
    ("GET /products/{product_id}/price", 25, Worker.price),
    ("POST /files", 3, Worker.upload),
    ("GET /files/{file_id}", 4, Worker.download),
    ("GET /inventory/{product_id}", 6, Worker.inventory),
    ("POST /logout + /login", 1, Worker.logout_login),
]


async def run_worker(worker: Worker, stats: Stats, deadline: float, max_requests: int) -> None:
    labels = [m[0] for m in MIX]
    weights = [m[1] for m in MIX]
    actions = {m[0]: m[2] for m in MIX}
    started = time.perf_counter()
    try:
        ok = (await worker.login()).status_code == 200
    except httpx.HTTPError:
        ok = False
    stats.record("POST /login", time.perf_counter() - started, ok)
    stats.issued += 1
    while time.monotonic() < deadline and stats.issued < max_requests:
        stats.issued += 1
        label = worker.rng.choices(labels, weights)[0]
        started = time.perf_counter()
        try:
            response = await actions[label](worker)
            ok = response.status_code < 400
        except httpx.HTTPError:
            ok = False
        stats.record(label, time.perf_counter() - started, ok)


async def report_progress(stats: Stats, start: float, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        elapsed = time.monotonic() - start
        done = sum(len(v) for v in stats.latencies.values())
        errors = sum(stats.errors.values())
        print(
            f"[load] {elapsed:5.1f}s  {done:6d} requests  {done / elapsed:7.1f} req/s  {errors} errors",
            flush=True,
        )


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def print_table(stats: Stats, elapsed: float) -> None:
    width = max(len(k) for k in stats.latencies) if stats.latencies else 10
    print(f"\n{'endpoint':<{width}}  {'requests':>8}  {'errors':>6}  {'p50 ms':>8}  {'p95 ms':>8}")
    print("-" * (width + 38))
    total = errors = 0
    for label in sorted(stats.latencies):
        values = stats.latencies[label]
        total += len(values)
        errors += stats.errors[label]
        p50, p95 = percentile(values, 50) * 1000, percentile(values, 95) * 1000
        print(f"{label:<{width}}  {len(values):>8}  {stats.errors[label]:>6}  {p50:>8.1f}  {p95:>8.1f}")
    print("-" * (width + 38))
    print(f"{'total':<{width}}  {total:>8}  {errors:>6}  ({total / elapsed:.1f} req/s over {elapsed:.1f} s)")


async def main_async(args: argparse.Namespace) -> int:
    stats = Stats()
    start = time.monotonic()
    deadline = start + args.duration
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=args.base_url, timeout=30.0, limits=limits) as client:
        workers = [Worker(client, random.Random(args.seed + i)) for i in range(args.concurrency)]
        progress = asyncio.create_task(report_progress(stats, start, args.progress_every))
        try:
            await asyncio.gather(*(run_worker(w, stats, deadline, args.requests) for w in workers))
        finally:
            progress.cancel()
    print_table(stats, time.monotonic() - start)
    return 1 if sum(stats.errors.values()) else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds (default 20)")
    parser.add_argument("--requests", type=int, default=1_000_000, help="stop after this many requests")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--progress-every", type=float, default=5.0)
    args = parser.parse_args(argv)
    host = urlsplit(args.base_url).hostname
    if host not in LOOPBACK:
        parser.error(f"--base-url must be a loopback address (127.0.0.1, localhost, ::1), not {host!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
