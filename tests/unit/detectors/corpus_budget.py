"""Scenario builders for the latency-budget and cache detectors: real SDK spans, explicit clocks.

A scenario is a tree of :class:`S` (name, start and end in milliseconds from the request's start,
kind, attributes, children). :func:`build` starts and ends real ``opentelemetry.sdk`` spans with
exactly those timestamps and returns the :class:`TraceView` a detector sees. The labeled corpus
(:data:`SCENARIOS`) says, for each case, which findings a correct detector reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otelperf.config import Settings
from otelperf.detectors._api import Detector, Finding, TraceView
from otelperf.detectors.budget import LatencyBudgetDetector
from otelperf.detectors.cache import CacheDetector

BASE_NS = 1_700_000_000_000_000_000  # a fixed epoch: every timestamp in the corpus is exact
MS = 1_000_000


@dataclass
class S:
    """One span of a scenario; times in ms relative to ``at`` of :func:`build`."""

    name: str
    start: float
    end: float
    kind: SpanKind = SpanKind.INTERNAL
    attributes: dict[str, Any] = field(default_factory=dict)
    children: Sequence[S] = ()


def server(route: str, start: float, end: float, *children: S, kind: SpanKind = SpanKind.SERVER) -> S:
    method, _, path = route.partition(" ")
    attributes = {"http.request.method": method, "http.route": path}
    return S(route, start, end, kind, attributes, children)


def db(sql: str, start: float, end: float, *children: S) -> S:
    attributes = {
        "db.system.name": "postgresql",
        "db.query.text": sql,
        "db.operation.name": sql.split(maxsplit=1)[0],
        "otelperf.component": "db",
    }
    return S(sql.split(maxsplit=1)[0], start, end, SpanKind.CLIENT, attributes, children)


def cache(
    name: str, start: float, end: float, *, hit: bool, key_hash: str | None = None, op: str = "get"
) -> S:
    attributes: dict[str, Any] = {
        "otelperf.cache.name": name,
        "otelperf.cache.operation": op,
        "otelperf.component": "cache",
        "otelperf.cache.hit": hit,
    }
    if key_hash is not None:
        attributes["otelperf.cache.key_hash"] = key_hash
    return S(f"cache {op}", start, end, SpanKind.INTERNAL, attributes)


def redis_get(start: float, end: float, *, hit: bool) -> S:
    attributes = {
        "db.system.name": "redis",
        "db.operation.name": "GET",
        "db.query.text": "GET ?",
        "otelperf.component": "cache",
        "otelperf.cache.name": "redis",
        "otelperf.cache.hit": hit,
    }
    return S("GET", start, end, SpanKind.CLIENT, attributes)


def http(method: str, url: str, start: float, end: float, *children: S) -> S:
    attributes = {"http.request.method": method, "url.full": url, "otelperf.component": "http"}
    return S(method, start, end, SpanKind.CLIENT, attributes, children)


def app(name: str, start: float, end: float, *children: S) -> S:
    return S(name, start, end, SpanKind.INTERNAL, {}, children)


def build(root: S, *, at: int = BASE_NS) -> TraceView:
    """Real SDK spans for ``root`` and its descendants, with the scenario's exact timestamps."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("corpus")

    def emit(spec: S, parent: trace.Span | None) -> None:
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = tracer.start_span(
            spec.name,
            context=context,
            kind=spec.kind,
            attributes=spec.attributes,
            start_time=at + round(spec.start * MS),
        )
        for child in spec.children:
            emit(child, span)
        span.end(end_time=at + round(spec.end * MS))

    emit(root, None)
    provider.shutdown()
    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    [root_span] = [s for s in spans if s.parent is None]
    return TraceView(root_span, spans)


# --- the labeled corpus ---------------------------------------------------------------------------

Expected = set[tuple[str, str]]  # (finding detector, statement)


@dataclass
class Scenario:
    """Requests (in order, each at its own offset in ms) and the findings a correct detector gives."""

    name: str
    make_detector: Callable[[], Detector]
    requests: Sequence[tuple[float, S]]
    expected: Expected

    def run(self) -> tuple[Expected, list[Finding]]:
        detector = self.make_detector()
        findings: list[Finding] = []
        for offset_ms, root in self.requests:
            findings.extend(detector.analyze(build(root, at=BASE_NS + round(offset_ms * MS))))
        return {(f.detector, f.statement) for f in findings}, findings


def budget_detector(budgets: dict[str, float], **kwargs: Any) -> Callable[[], Detector]:
    return lambda: LatencyBudgetDetector(Settings(budgets=budgets), None, **kwargs)


def cache_detector(**kwargs: Any) -> Callable[[], Detector]:
    return lambda: CacheDetector(Settings(), None, **kwargs)


ORDERS = "GET /orders/{id}"
SQL_ORDERS = "SELECT * FROM orders WHERE customer_id = $1"
SQL_ITEMS = "SELECT * FROM items WHERE order_id = $1"


def orders_400ms_db_300() -> S:
    """400 ms: three sequential queries (100 ms each), the rest the app's own code."""
    return server(
        ORDERS,
        0,
        400,
        db(SQL_ORDERS, 20, 120),
        db(SQL_ORDERS, 140, 240),
        db(SQL_ITEMS, 260, 360),
    )


def gather_two_queries() -> S:
    """asyncio.gather of two 100 ms queries that overlap fully, then 50 ms of cache: 250 ms."""
    return server(
        "GET /dashboard",
        0,
        250,
        db(SQL_ORDERS, 50, 150),
        db(SQL_ITEMS, 50, 150),
        cache("local", 160, 210, hit=False),
    )


def http_with_in_process_handler() -> S:
    """An outgoing call served by a handler in this process (ASGI transport) that queries the db."""
    return server(
        "GET /proxy",
        0,
        200,
        http(
            "GET",
            "http://inventory.local/stock",
            20,
            180,
            server("GET /stock", 40, 160, db(SQL_ITEMS, 60, 110)),
        ),
    )


def nested_connect_inside_query() -> S:
    """A query with the driver's own connect span inside, under an app span: 300 ms."""
    return server(
        "POST /checkout",
        0,
        300,
        app("charge", 10, 290, db(SQL_ORDERS, 50, 250, app("connect", 50, 100))),
    )


def _lookups(count: int, hits: int, *, name: str = "sessions", spacing: float = 5.0) -> list[S]:
    return [cache(name, i * spacing, i * spacing + 1, hit=i < hits) for i in range(count)]


SCENARIOS: list[Scenario] = [
    Scenario(
        "breach: 400 ms route budget 300 ms, db 300 of 400",
        budget_detector({ORDERS: 300}),
        [(0, orders_400ms_db_300())],
        {("latency_budget", ORDERS)},
    ),
    Scenario(
        "under budget: 400 ms against 500 ms",
        budget_detector({ORDERS: 500}),
        [(0, orders_400ms_db_300())],
        set(),
    ),
    Scenario(
        "route budget beats '*': 400 ms with '*'=100 but the route's 450",
        budget_detector({ORDERS: 450, "*": 100}),
        [(0, orders_400ms_db_300())],
        set(),
    ),
    Scenario(
        "'*' fallback: 250 ms dashboard, '*'=200",
        budget_detector({ORDERS: 1000, "*": 200}),
        [(0, gather_two_queries())],
        {("latency_budget", "GET /dashboard")},
    ),
    Scenario(
        "gather counted once: db 100 ms is under a 150 ms db budget (200 if double-counted)",
        budget_detector({"db": 150}),
        [(0, gather_two_queries())],
        set(),
    ),
    Scenario(
        "component budget breach: db 300 ms over db=150, request within its 1 s",
        budget_detector({"*": 1000, "db": 150}),
        [(0, orders_400ms_db_300())],
        {("latency_budget", f"{ORDERS} (db)")},
    ),
    Scenario(
        "non-SERVER root (a worker job) is not checked",
        budget_detector({"*": 10}),
        [(0, server("job refresh", 0, 400, db(SQL_ORDERS, 0, 300), kind=SpanKind.INTERNAL))],
        set(),
    ),
    Scenario(
        "in-process handler under http: http 40 ms within an http=50 budget (160 if counted whole)",
        budget_detector({"http": 50, "*": 150}),
        [(0, http_with_in_process_handler())],
        {("latency_budget", "GET /proxy")},
    ),
    Scenario(
        "connect inside a query is db time: db 200 ms over db=150",
        budget_detector({"POST /checkout db": 150, "db": 500}),
        [(0, nested_connect_inside_query())],
        {("latency_budget", "POST /checkout (db)")},
    ),
    Scenario(
        "cache low hit ratio: 25 lookups, 5 hits",
        cache_detector(),
        [(0, server("GET /me", 0, 200, *_lookups(25, 5)))],
        {("cache_hit_ratio", "cache sessions")},
    ),
    Scenario(
        "healthy cache: 25 lookups, 24 hits",
        cache_detector(),
        [(0, server("GET /me", 0, 200, *_lookups(25, 24)))],
        set(),
    ),
    Scenario(
        "low ratio but too few lookups: 10 lookups, 0 hits",
        cache_detector(),
        [(0, server("GET /me", 0, 200, *_lookups(10, 0)))],
        set(),
    ),
    Scenario(
        "miss storm: 12 concurrent requests miss the same key within 1 s",
        cache_detector(),
        [
            (i * 50, server("GET /product", 0, 40, cache("products", 5, 30, hit=False, key_hash="k1")))
            for i in range(12)
        ],
        {("cache_miss_storm", "cache products key k1")},
    ),
    Scenario(
        "no storm: 12 misses of one key spread over 12 s",
        cache_detector(),
        [
            (i * 1000, server("GET /product", 0, 40, cache("products", 5, 30, hit=False, key_hash="k1")))
            for i in range(12)
        ],
        set(),
    ),
    Scenario(
        "no storm: 12 concurrent misses on 12 different keys",
        cache_detector(),
        [
            (i * 50, server("GET /product", 0, 40, cache("products", 5, 30, hit=False, key_hash=f"k{i}")))
            for i in range(12)
        ],
        set(),
    ),
    Scenario(
        "no storm: one request misses the same key 15 times in a loop",
        cache_detector(),
        [
            (
                0,
                server(
                    "GET /loop",
                    0,
                    200,
                    *[cache("products", i * 10, i * 10 + 5, hit=False, key_hash="k1") for i in range(15)],
                ),
            )
        ],
        set(),
    ),
    Scenario(
        "redis miss burst without key hashes: per-cache fallback",
        cache_detector(),
        [(i * 20, server("GET /feed", 0, 15, redis_get(2, 10, hit=False))) for i in range(10)],
        {("cache_miss_storm", "cache redis (all keys)")},
    ),
]
