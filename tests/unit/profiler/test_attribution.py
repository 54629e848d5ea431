"""The profiler on a real FastAPI app (httpx.ASGITransport): a request that burns CPU in a known
function gets an over-budget finding naming that function, with milliseconds and file:line, for
``def`` routes (Starlette's threadpool) and ``async def`` routes (the event loop's thread)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from otelperf import _names
from otelperf.detectors._api import Finding
from otelperf.testing import Capture, capture, stop_capture

HERE = os.path.basename(__file__)
BURN_S = 0.12


def burn_in_sync_handler(seconds: float) -> int:
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


def burn_in_async_handler(seconds: float) -> int:
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


def spin_a(seconds: float) -> int:
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


def spin_b(seconds: float) -> int:
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/sync")
    def sync_route() -> dict[str, int]:
        return {"n": burn_in_sync_handler(BURN_S)}

    @app.get("/async")
    async def async_route() -> dict[str, int]:
        return {"n": burn_in_async_handler(BURN_S)}

    @app.get("/a")
    async def route_a() -> dict[str, int]:
        n = 0
        for _ in range(10):  # CPU in slices, letting the other request run in between
            n += spin_a(BURN_S / 10)
            await asyncio.sleep(0)
        return {"n": n}

    @app.get("/b")
    async def route_b() -> dict[str, int]:
        n = 0
        for _ in range(10):
            n += spin_b(BURN_S / 10)
            await asyncio.sleep(0)
        return {"n": n}

    @app.get("/sync-a")
    def sync_a() -> dict[str, int]:
        return {"n": spin_a(BURN_S)}

    @app.get("/sync-b")
    def sync_b() -> dict[str, int]:
        return {"n": spin_b(BURN_S)}

    return app


async def get_all(app: Any, *paths: str) -> list[httpx.Response]:
    # The client is httpx, itself instrumented: keep its CLIENT spans out of these server tests.
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            return list(await asyncio.gather(*(client.get(p) for p in paths)))
    finally:
        otel_context.detach(token)


@pytest.fixture
def cap() -> Iterator[Capture]:
    c = capture(budgets={"*": 30}, profiler=True, profiler_hz=200)
    try:
        yield c
    finally:
        stop_capture(c)


def budget_finding(cap: Capture, route: str) -> Finding:
    found = [f for f in cap.findings if f.detector == "latency_budget" and f.route == route]
    assert len(found) == 1, [f.summary() for f in cap.findings]
    return found[0]


def _check_names_function(finding: Finding, function: str) -> None:
    profile = finding.details["app_profile"]
    top = profile["functions"][0]
    assert top["function"] == function, profile
    assert top["library"] is None  # the function's own lines, not a library it called
    assert top["file"].endswith(HERE)
    first = globals()[function].__code__.co_firstlineno
    assert first < top["line"] <= first + 5  # a line inside the function's body
    # At least half of the burn (the sampler may lose the request's last interval, and more when
    # the machine is busy and does not schedule it), and most of what was sampled.
    assert top["ms"] >= BURN_S * 1000 * 0.5, profile
    assert top["ms"] >= profile["sampled_ms"] * 0.6, profile
    assert top["ms"] <= finding.details["breakdown"]["app"] + 0.001
    assert f"ms {function} ({HERE}:{top['line']})" in finding.hint
    assert finding.hint.split("; app ")[1].startswith(f"{finding.details['breakdown']['app']:.0f} ms: ")
    assert function in profile["folded"]
    assert len(profile["folded"].encode()) <= 4096
    # App time leads the breakdown: the finding's call site is the function it went to.
    assert finding.details["code.function.name"] == function
    assert finding.details["code.line.number"] == top["line"]
    assert finding.details["call_site"].endswith(f"{HERE}:{top['line']} in {function}()")


def test_sync_route_in_the_threadpool_names_the_function_that_burns_cpu(cap: Capture) -> None:
    [response] = asyncio.run(get_all(make_app(), "/sync"))
    assert response.status_code == 200
    _check_names_function(budget_finding(cap, "GET /sync"), "burn_in_sync_handler")


def test_async_route_on_the_loop_names_the_function_that_burns_cpu(cap: Capture) -> None:
    [response] = asyncio.run(get_all(make_app(), "/async"))
    assert response.status_code == 200
    _check_names_function(budget_finding(cap, "GET /async"), "burn_in_async_handler")


def test_the_finding_event_on_the_request_span_carries_the_profile(cap: Capture) -> None:
    asyncio.run(get_all(make_app(), "/sync"))
    [server] = [s for s in cap.spans if s.kind is SpanKind.SERVER]
    [event] = [e for e in server.events if e.name == _names.FINDING_EVENT]
    attributes = event.attributes or {}
    summary = str(attributes[_names.FINDING_APP_PROFILE])
    assert summary.startswith("app ") and f"burn_in_sync_handler ({HERE}:" in summary
    folded = str(attributes[_names.FINDING_APP_FOLDED])
    assert "burn_in_sync_handler" in folded and len(folded.encode()) <= 4096
    for line in folded.splitlines():  # "frame;frame;frame 12.5": the flame graph's input
        stack, _, ms = line.rpartition(" ")
        assert stack and float(ms) > 0


@pytest.mark.parametrize("paths", [("/a", "/b"), ("/sync-a", "/sync-b")], ids=["async", "sync"])
def test_two_concurrent_requests_are_not_mixed_up(cap: Capture, paths: tuple[str, str]) -> None:
    responses = asyncio.run(get_all(make_app(), *paths))
    assert [r.status_code for r in responses] == [200, 200]
    for path, mine, other in ((paths[0], "spin_a", "spin_b"), (paths[1], "spin_b", "spin_a")):
        profile = budget_finding(cap, f"GET {path}").details["app_profile"]
        names = [f["function"] for f in profile["functions"]]
        assert names[0] == mine, profile
        assert other not in names and other not in profile["folded"], profile


def test_no_profile_when_the_profiler_is_off() -> None:
    c = capture(budgets={"*": 30}, profiler=False)
    try:
        asyncio.run(get_all(make_app(), "/sync"))
        finding = budget_finding(c, "GET /sync")
        assert "app_profile" not in finding.details
        assert "; app " not in finding.hint
        assert c.runtime.profiler is None
    finally:
        stop_capture(c)


def test_requests_within_budget_leave_nothing_behind() -> None:
    c = capture(budgets={"*": 10_000}, profiler=True, profiler_hz=200)
    try:
        asyncio.run(get_all(make_app(), "/sync", "/async"))
        assert [f for f in c.findings if f.detector == "latency_budget"] == []
        profiler = c.runtime.profiler
        assert profiler is not None and profiler.samples > 0
        assert profiler._finished == {} and profiler.following() == 0  # taken by the detector
        assert profiler._tasks == {} and profiler._threads == {}  # no task or thread still registered
    finally:
        stop_capture(c)
