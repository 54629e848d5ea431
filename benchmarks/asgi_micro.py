"""Per-request cost of otelperf's ASGI middleware vs contrib's OpenTelemetryMiddleware, in-process.

    .venv/bin/pip install opentelemetry-instrumentation-asgi   # for the comparison (dev extra)
    .venv/bin/python benchmarks/asgi_micro.py [--requests 20000]

The app is a minimal Starlette route called directly (no server, no socket), so the numbers are
the middleware's own cost. Both sides get the same SDK TracerProvider (always-on sampling, no
exporter) and MeterProvider, so span creation and metric recording are counted, export is not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from otelperf.config import Settings
from otelperf.instrumentation import asgi

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/items/42",
    "raw_path": b"/items/42",
    "root_path": "",
    "query_string": b"page=2",
    "headers": [
        (b"host", b"shop.local:8000"),
        (b"user-agent", b"bench/1.0"),
        (b"accept", b"*/*"),
        (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


def make_app() -> Starlette:
    async def item(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/items/{item_id}", item)])


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


async def run(app: Any, n: int) -> float:
    for _ in range(200):  # warm up (and build the Starlette middleware stack)
        await app(dict(SCOPE), _receive, _send)
    started = time.perf_counter()
    for _ in range(n):
        await app(dict(SCOPE), _receive, _send)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    tracer_provider = TracerProvider()
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    asgi._state = asgi._build_state(
        tracer_provider.get_tracer("bench"), meter_provider.get_meter("bench"), Settings()
    )

    apps: dict[str, Any] = {"bare": make_app(), "otelperf": asgi.OtelperfASGIMiddleware(make_app())}
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        apps["contrib"] = OpenTelemetryMiddleware(
            make_app(), tracer_provider=tracer_provider, meter_provider=meter_provider
        )
    except ImportError:
        print("(opentelemetry-instrumentation-asgi not installed: contrib column skipped)")

    results: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(args.rounds):  # interleaved so drift hits every variant alike
        for name, app in apps.items():
            results[name].append(asyncio.run(run(app, args.requests)))

    bare = statistics.median(results["bare"])
    print(f"{'variant':<10} {'us/request':>11} {'overhead us':>12}")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:<10} {median:>11.1f} {median - bare:>12.1f}")
    if "contrib" in results:
        ours = statistics.median(results["otelperf"]) - bare
        theirs = statistics.median(results["contrib"]) - bare
        print(f"otelperf overhead / contrib overhead = {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
