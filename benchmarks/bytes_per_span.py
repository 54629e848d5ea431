"""Bytes per encoded span on the example shop's typical traffic: the figure behind the retry
buffer's "how many seconds of outage" arithmetic in docs/delivery.md.

    .venv/bin/python benchmarks/bytes_per_span.py [--requests 200]

Runs examples/shop in-process (SQLite, in-process cache) under otelperf's capture, sends a mix of
its read routes, then encodes the captured spans in batches of 512 (the default batch size) with
otelperf's encoder, as the exporter does, and divides. Startup (schema, seed) is left out.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import httpx

from otelperf.export.encode import encode_spans
from otelperf.testing import Capture, capture, stop_capture

PATHS = ["/orders?customer_id=2", "/orders/3", "/products/5/price", "/inventory/4"]


async def drive(cap: Capture, requests: int, db_path: Path) -> None:
    from examples.shop.app import create_app
    from examples.shop.config import Config

    base = Config(
        seed_orders=60,
        password_iterations=1_000,
        inventory_url="http://shop.test/internal/stock/{product_id}",
    )
    config = replace(base, database_url=f"sqlite+aiosqlite:///{db_path}")
    app = create_app(config)
    app.state.inventory_transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as client,
    ):
        cap.clear()
        for i in range(requests):
            response = await client.get(PATHS[i % len(PATHS)])
            response.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    cap = capture(service_name="shop", service_version="1.0.0")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(drive(cap, args.requests, Path(tmp) / "shop.db"))
        spans = list(cap.spans)
    finally:
        stop_capture(cap)
    total = sum(len(encode_spans(spans[i : i + 512])) for i in range(0, len(spans), 512))
    kinds = Counter(s.kind.name for s in spans)
    print(f"{args.requests} requests -> {len(spans)} spans ({dict(kinds)})")
    print(f"encoded: {total} bytes in batches of 512 -> {total / len(spans):.0f} bytes/span")
    per_request = total / args.requests
    held = 64 * 1024 * 1024 / (total / len(spans))
    print(f"{per_request:.0f} bytes/request; 64 MiB holds {held:,.0f} spans")


if __name__ == "__main__":
    main()
