"""The shop's CPU-bound report: the profiler's example in the tour must name compute_discount."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import httpx
import pytest
from examples.shop import pricing
from fastapi import FastAPI

from otelperf.testing import Capture, capture, stop_capture

ROUTE = "GET /reports/discounts"


@pytest.fixture
def cap() -> Iterator[Capture]:
    c = capture(budgets={ROUTE: 20}, profiler=True, profiler_hz=200)
    try:
        yield c
    finally:
        stop_capture(c)


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        return await client.get(path)


def test_the_discount_report_is_all_python_and_the_finding_names_compute_discount(cap: Capture) -> None:
    # The shop's route is this one line (examples/shop/routes_reports.py); the shop's app itself
    # needs a newer FastAPI than the oldest this suite runs on.
    app = FastAPI()

    @app.get("/reports/discounts")
    def discount_report(rounds: int = 5) -> dict[str, int]:
        return pricing.discount_report(rounds)

    pricing.promotions()  # built at first use: here, not in the request (its time is not the point)
    response = asyncio.run(_get(app, "/reports/discounts?rounds=5"))
    assert response.status_code == 200
    assert response.json() == {"lines": 5 * pricing.PRODUCTS, "discounted": 5 * pricing.PRODUCTS}
    [finding] = [f for f in cap.findings if f.detector == "latency_budget" and f.route == ROUTE]
    top = finding.details["app_profile"]["functions"][0]
    assert top["function"] == "compute_discount" and top["file"].endswith("pricing.py"), top
    assert top["library"] is None
    assert finding.details["code.function.name"] == "compute_discount"
    # The loop's line: a tight loop is sampled at its back edge, which has no line of its own.
    source = inspect.getsource(pricing.compute_discount).splitlines()
    loop = pricing.compute_discount.__code__.co_firstlineno + next(
        i for i, line in enumerate(source) if line.strip().startswith("for promotion in")
    )
    assert top["line"] == loop, (top, loop)
    assert f"compute_discount (pricing.py:{loop})" in finding.hint
