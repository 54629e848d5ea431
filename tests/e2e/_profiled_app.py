"""A FastAPI app under ``otelperf.init()`` (exporting to the real collector) that burns CPU in a known
function past its budget; for test_e2e_profiler.py.

    python -m tests.e2e._profiled_app --service profiled-x --requests 3
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from fastapi import FastAPI
from opentelemetry import context as otel_context

import otelperf

BURN_S = 0.15


def burn_cpu_for_the_e2e_test(seconds: float) -> int:
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


app = FastAPI()


@app.get("/burn")
def burn() -> dict[str, int]:
    return {"n": burn_cpu_for_the_e2e_test(BURN_S)}


async def send(requests: int) -> None:
    # The in-process client is httpx, which otelperf instruments: keep its spans out.
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://profiled.test") as client:
            for _ in range(requests):
                response = await client.get("/burn")
                response.raise_for_status()
    finally:
        otel_context.detach(token)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True)
    parser.add_argument("--requests", type=int, default=3)
    args = parser.parse_args()
    otelperf.init(service_name=args.service, budgets={"*": 30}, budgets_file="none", schedule_delay="100ms")
    asyncio.run(send(args.requests))
    assert otelperf.shutdown(timeout=20.0), "otelperf could not deliver every span"


if __name__ == "__main__":
    main()
