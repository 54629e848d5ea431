"""The shop's tour describes real traces from typed spans: the N+1 list, the cache hit and miss."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from examples.shop.tour.traces import RequestTrace, cache_hit, describe_cache, describe_db, summary

from otelperf.backends import Span, SpanKind

ROOT = Path(__file__).resolve().parents[3]
MS = 1_000_000


def span(name: str, start_ms: int, end_ms: int, kind: SpanKind = SpanKind.CLIENT, **attributes: Any) -> Span:
    return Span("t" * 32, f"{start_ms:016x}", "", name, kind, "shop", start_ms * MS, end_ms * MS, attributes)


def request(root: Span, *children: Span) -> RequestTrace:
    return RequestTrace(root, (root, *children))


def test_an_n_plus_one_list_is_described_as_such() -> None:
    root = span(
        "GET /orders",
        0,
        100,
        SpanKind.SERVER,
        **{"http.request.method": "GET", "url.path": "/orders", "url.query": "customer_id=7"},
    )
    orders = span("SELECT orders", 1, 11, **{"db.system.name": "postgresql", "db.query.text": "SELECT o"})
    items = [
        span(
            "SELECT order_items",
            11 + 5 * i,
            16 + 5 * i,
            **{"db.system.name": "postgresql", "db.query.text": "SELECT i"},
        )
        for i in range(3)
    ]
    trace = request(root, orders, *items)
    assert describe_db(trace) == "1 SELECT orders + 3 SELECT order_items (N+1: one statement run 3 times)"
    assert summary(trace) == (
        "GET /orders?customer_id=7: 1 SELECT orders + 3 SELECT order_items "
        "(N+1: one statement run 3 times), 100.0 ms (25.0 ms = 25% in SQL)"
    )


def test_a_cache_miss_reads_the_database_and_fills_the_cache() -> None:
    root = span(
        "GET /products/{product_id}/price", 0, 20, SpanKind.SERVER, **{"url.path": "/products/5/price"}
    )
    redis = {"db.system.name": "redis", "otelperf.cache.name": "redis"}
    miss = request(
        root,
        span("GET", 1, 2, **redis, **{"otelperf.cache.hit": False}),
        span("SELECT products", 2, 10, **{"db.system.name": "postgresql"}),
        span("SET", 10, 11, **redis),
    )
    hit = request(root, span("GET", 1, 2, **redis, **{"otelperf.cache.hit": True}))
    assert describe_cache(miss) == "GET (miss) -> SELECT products -> SET"
    assert (cache_hit(miss), cache_hit(hit), cache_hit(request(root))) == (False, True, None)


def test_the_tour_runs_as_a_module_and_lists_its_steps() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.shop.tour", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=None,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: python -m examples.shop.tour" in done.stdout
    assert "8. the HTML report of the run" in done.stdout
