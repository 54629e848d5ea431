"""A labeled corpus of requests for the slow-query and N+1 detectors.

Each scenario is one request built with the real OpenTelemetry SDK (a TracerProvider and an
in-memory exporter), with explicit start and end times and the attributes otelperf's
instrumentation puts on its spans. Each says which findings it must produce (detector, statement,
count, anchor span) and, for the look-alikes, that it must produce none.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind

from otelperf.config import Settings
from otelperf.detectors._api import Finding, TraceView
from otelperf.detectors.fingerprint import fingerprint
from otelperf.detectors.n_plus_one import NPlusOneDetector
from otelperf.detectors.slow_query import SlowQueryDetector

T0 = 1_700_000_000_000_000_000  # ns
MS = 1_000_000


class TraceBuilder:
    """Spans of one request on a clock that only moves forward: each call starts where the last ended."""

    def __init__(self, route: str = "GET /orders") -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("corpus")
        self.now = T0
        method, _, path = route.partition(" ")
        self.root = self.tracer.start_span(
            route,
            kind=SpanKind.SERVER,
            start_time=self.now,
            attributes={"http.request.method": method, "http.route": path, "url.path": path},
        )

    def open(self, name: str, parent: Span | None = None) -> Span:
        """An app span (a handler, a loop iteration...) to put children under; end it with close()."""
        return self.tracer.start_span(
            name, context=trace.set_span_in_context(parent or self.root), start_time=self.now
        )

    def close(self, span: Span, gap_ms: float = 0.1) -> Span:
        self.now += int(gap_ms * MS)
        span.end(end_time=self.now)
        return span

    def leaf(
        self,
        name: str,
        parent: Span,
        duration_ms: float,
        attributes: Mapping[str, Any],
        *,
        kind: SpanKind = SpanKind.CLIENT,
        gap_ms: float = 0.05,
    ) -> Span:
        self.now += int(gap_ms * MS)
        span = self.tracer.start_span(
            name,
            context=trace.set_span_in_context(parent),
            kind=kind,
            start_time=self.now,
            attributes=dict(attributes),
        )
        self.now += int(duration_ms * MS)
        span.end(end_time=self.now)
        return span

    def sql(
        self,
        parent: Span,
        statement: str,
        duration_ms: float,
        *,
        legacy: bool = False,
        name: str = "",
        site: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        gap_ms: float = 0.05,
    ) -> Span:
        """A statement's span; ``site``: its code.* attributes (see :func:`site`); ``extra``: more."""
        verb = statement.split(" ", 1)[0].upper()
        attributes: dict[str, Any] = {"db.system.name": "postgresql", "otelperf.component": "db"}
        if legacy:  # a third-party instrumentation: old names, text not sanitized
            attributes = {"db.system": "postgresql", "db.statement": statement}
            attributes["db.system.name"] = "postgresql"
        else:
            attributes["db.query.text"] = statement
            attributes["db.operation.name"] = verb
        attributes.update(site or {})
        attributes.update(extra or {})
        return self.leaf(name or f"{verb} shop", parent, duration_ms, attributes, gap_ms=gap_ms)

    def redis(
        self, parent: Span, command: str, duration_ms: float, site: Mapping[str, Any] | None = None
    ) -> Span:
        attributes = {
            "db.system.name": "redis",
            "db.operation.name": command,
            "db.query.text": f"{command} ?",
            "otelperf.component": "cache",
            "otelperf.cache.name": "redis",
            "otelperf.cache.hit": True,
            "server.address": "127.0.0.1",
            **(site or {}),
        }
        return self.leaf(command, parent, duration_ms, attributes)

    def http(self, parent: Span, method: str, url: str, duration_ms: float) -> Span:
        host = url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        attributes = {
            "http.request.method": method,
            "url.full": url,
            "server.address": host,
            "otelperf.component": "http",
            "http.response.status_code": 200,
        }
        return self.leaf(method, parent, duration_ms, attributes)

    def app(self, name: str, parent: Span, duration_ms: float) -> Span:
        return self.leaf(name, parent, duration_ms, {}, kind=SpanKind.INTERNAL)

    def finish(self) -> TraceView:
        self.now += MS
        self.root.end(end_time=self.now)
        spans: list[ReadableSpan] = list(self.exporter.get_finished_spans())
        root = next(s for s in spans if s.parent is None)
        return TraceView(root, spans)


def hex_id(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")


def site(path: str, line: int, function: str) -> dict[str, Any]:
    """The code.* attributes of a call site in ``path`` (relative to the working directory, as
    findings show it)."""
    return {
        "code.file.path": os.path.join(os.getcwd(), path),
        "code.line.number": line,
        "code.function.name": function,
    }


@dataclass(frozen=True)
class Expected:
    detector: str
    statement: str
    count: int
    anchor: str  # hex span id
    severity: str = "warning"
    hint: str | None = None
    kind: str = "sql"  # sql | redis | http: what the fingerprint is taken of
    call_site: str | None = None  # "app/routes.py:44 in list_authors()": the loop's line
    details: Mapping[str, Any] = field(default_factory=dict)  # more of Finding.details to match

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.statement if self.kind == "sql" else f"{self.kind} {self.statement}")

    def matches(self, finding: Finding) -> bool:
        return (
            finding.detector == self.detector
            and finding.statement == self.statement
            and finding.fingerprint == self.fingerprint
            and finding.count == self.count
            and finding.anchor_span_id == self.anchor
            and finding.severity == self.severity
            and (self.hint is None or finding.hint == self.hint)
            and (self.call_site is None or finding.details.get("call_site") == self.call_site)
            and all(finding.details.get(k) == v for k, v in self.details.items())
        )


@dataclass
class Scenario:
    id: str
    view: TraceView
    expected: list[Expected]
    overrides: dict[str, float] = field(default_factory=dict)  # SlowQueryDetector(overrides=...)


ITEMS = "SELECT items.id, items.name FROM items WHERE items.order_id = $1"
ITEMS_N = "SELECT items.id, items.name FROM items WHERE items.order_id = ?"
CUSTOMER = "SELECT customers.id, customers.name FROM customers WHERE customers.id = %(pk_1)s"
CUSTOMER_N = "SELECT customers.id, customers.name FROM customers WHERE customers.id = ?"
ADDRESS = "SELECT addresses.id FROM addresses WHERE addresses.customer_id = %(param_1)s"
ADDRESS_N = "SELECT addresses.id FROM addresses WHERE addresses.customer_id = ?"
PRODUCT = "SELECT products.id, products.price FROM products WHERE products.id = ?"


# --- true N+1 -------------------------------------------------------------------------------------


def n1_plain() -> Scenario:
    b = TraceBuilder("GET /orders")
    handler = b.open("list_orders")
    b.sql(handler, "SELECT orders.id FROM orders WHERE orders.customer_id = $1 LIMIT $2", 4)
    for _ in range(10):
        b.sql(handler, ITEMS, 8)
    b.close(handler)
    return Scenario("n1_plain", b.finish(), [Expected("n_plus_one", ITEMS_N, 10, hex_id(handler))])


def n1_interleaved() -> Scenario:
    """A lazy load that issues two statements per row: A B A B ..."""
    b = TraceBuilder("GET /customers")
    handler = b.open("list_customers")
    for i in range(6):
        b.sql(handler, CUSTOMER.replace("pk_1", f"pk_{i}"), 10)
        b.sql(handler, ADDRESS, 9)
    b.close(handler)
    return Scenario(
        "n1_interleaved",
        b.finish(),
        [
            Expected("n_plus_one", CUSTOMER_N, 6, hex_id(handler)),
            Expected("n_plus_one", ADDRESS_N, 6, hex_id(handler)),
        ],
    )


def n1_with_pool_spans() -> Scenario:
    """Pool connect / checkout spans between the repeats do not break the group."""
    b = TraceBuilder("GET /invoices")
    handler = b.open("list_invoices")
    for i in range(7):
        b.app("connect" if i == 0 else "checkout", handler, 0.5)
        b.sql(handler, ITEMS, 9)
        b.app("checkin", handler, 0.1)
    b.close(handler)
    return Scenario("n1_with_pool_spans", b.finish(), [Expected("n_plus_one", ITEMS_N, 7, hex_id(handler))])


def n1_nested() -> Scenario:
    """A loop in a loop: per order its lines, per line its product. One finding per statement."""
    b = TraceBuilder("GET /orders/{id}/summary")
    handler = b.open("summary")
    for _ in range(5):
        b.sql(handler, ITEMS, 12)
        for _ in range(3):
            b.sql(handler, PRODUCT, 4)
    b.close(handler)
    return Scenario(
        "n1_nested",
        b.finish(),
        [
            Expected("n_plus_one", ITEMS_N, 5, hex_id(handler)),
            Expected("n_plus_one", PRODUCT, 15, hex_id(handler)),
        ],
    )


def n1_per_batch_parents() -> Scenario:
    """The same N+1 in two batches (each under its own span): one finding, on their common ancestor."""
    b = TraceBuilder("POST /export")
    handler = b.open("export")
    for batch in range(2):
        span = b.open(f"batch {batch}", handler)
        for _ in range(6):
            b.sql(span, ITEMS, 10)
        b.close(span)
    b.close(handler)
    return Scenario(
        "n1_per_batch_parents", b.finish(), [Expected("n_plus_one", ITEMS_N, 12, hex_id(handler))]
    )


def n1_in_lists_of_any_length() -> Scenario:
    """IN lists of different lengths are one statement: still repeated."""
    b = TraceBuilder("GET /carts")
    handler = b.open("carts")
    for n in range(1, 7):
        ids = ", ".join(f"${i}" for i in range(1, n + 1))
        b.sql(handler, f"SELECT prices.amount FROM prices WHERE prices.sku IN ({ids})", 10)
    b.close(handler)
    statement = "SELECT prices.amount FROM prices WHERE prices.sku IN (?)"
    return Scenario(
        "n1_in_lists_of_any_length", b.finish(), [Expected("n_plus_one", statement, 6, hex_id(handler))]
    )


def n1_raw_literals() -> Scenario:
    """A third-party instrumentation: db.statement with literals inline, not sanitized."""
    b = TraceBuilder("GET /users")
    handler = b.open("users")
    for user_id in range(8):
        b.sql(handler, f"select * from users where id = {user_id} and active = true", 7, legacy=True)
    b.close(handler)
    statement = "SELECT * FROM users WHERE id = ? AND active = ?"
    return Scenario("n1_raw_literals", b.finish(), [Expected("n_plus_one", statement, 8, hex_id(handler))])


def n1_redis_get() -> Scenario:
    b = TraceBuilder("GET /feed")
    handler = b.open("feed")
    for _ in range(20):
        b.redis(handler, "GET", 3)
    b.close(handler)
    return Scenario(
        "n1_redis_get",
        b.finish(),
        [
            Expected(
                "n_plus_one",
                "GET ?",
                20,
                hex_id(handler),
                hint="batch the reads: one MGET for the 20 GET calls, or a pipeline",
                kind="redis",
            )
        ],
    )


def n1_redis_hgetall_interleaved() -> Scenario:
    """HGETALL per row with SET writes in between: the reads are flagged, the writes are not."""
    b = TraceBuilder("GET /profiles")
    handler = b.open("profiles")
    for _ in range(6):
        b.redis(handler, "HGETALL", 9)
        b.redis(handler, "SET", 9)
    b.close(handler)
    return Scenario(
        "n1_redis_hgetall_interleaved",
        b.finish(),
        [Expected("n_plus_one", "HGETALL ?", 6, hex_id(handler), kind="redis")],
    )


def n1_http_ids_in_path() -> Scenario:
    b = TraceBuilder("GET /basket")
    handler = b.open("basket")
    for item_id in (17, 204, 3, 9981, 55, 8):
        b.http(handler, "GET", f"http://inventory:8080/api/items/{item_id}/stock?fields=qty", 15)
    b.close(handler)
    return Scenario(
        "n1_http_ids_in_path",
        b.finish(),
        [
            Expected(
                "n_plus_one",
                "GET inventory/api/items/{id}/stock",
                6,
                hex_id(handler),
                hint=(
                    "fetch in one call (a batch endpoint for GET inventory/api/items/{id}/stock)"
                    " or concurrently: the 6 calls"
                ),
                kind="http",
            )
        ],
    )


def n1_http_uuids() -> Scenario:
    b = TraceBuilder("GET /team")
    handler = b.open("team")
    for i in range(5):
        b.http(handler, "GET", f"https://users.internal/v1/users/{i:08x}-1b2c-4d5e-8f90-0123456789ab", 20)
    b.close(handler)
    return Scenario(
        "n1_http_uuids",
        b.finish(),
        [Expected("n_plus_one", "GET users.internal/v1/users/{id}", 5, hex_id(handler), kind="http")],
    )


# --- call sites, relationships and the window rule ----------------------------------------------

BOOKS = "SELECT book.id, book.author_id FROM book WHERE ? = book.author_id"
AUTHORS = "SELECT author.id, author.name FROM author ORDER BY author.id LIMIT ?"
LAZY_BOOKS = {
    "otelperf.orm.relationship": "Author.books",
    "otelperf.orm.load": "lazy",
    "otelperf.orm.parent_table": "author",
}


def n1_lazy_load_names_the_relationship_and_the_parent_query() -> Scenario:
    """Lazy loads of Author.books: the fix names the relationship and the line of the query that
    loaded the authors; the loop's line is where the lazy loads ran (a statement of another
    table in between is not the parent query)."""
    b = TraceBuilder("GET /authors")
    handler = b.open("list_authors")
    b.sql(
        handler,
        AUTHORS,
        3,
        site=site("app/routes.py", 42, "list_authors"),
        extra={"db.collection.name": "author"},
    )
    b.sql(
        handler,
        "SELECT config.value FROM config WHERE config.key = ?",
        1,
        extra={"db.collection.name": "config"},
    )
    for _ in range(8):
        b.sql(handler, BOOKS, 8, site=site("app/routes.py", 44, "list_authors"), extra=LAZY_BOOKS)
    b.close(handler)
    hint = (
        "add `.options(selectinload(Author.books))` to the query at app/routes.py:42 in list_authors():"
        " Author.books is lazily loaded 8 times at app/routes.py:44 in list_authors()"
    )
    return Scenario(
        "n1_lazy_load_names_the_relationship_and_the_parent_query",
        b.finish(),
        [
            Expected(
                "n_plus_one",
                BOOKS,
                8,
                hex_id(handler),
                hint=hint,
                call_site="app/routes.py:44 in list_authors()",
                details={
                    "relationship": "Author.books",
                    "parent_call_site": "app/routes.py:42 in list_authors()",
                    "parent_statement": AUTHORS,
                },
            )
        ],
    )


REVIEWS = "SELECT review.id, review.book_id FROM review WHERE ? = review.book_id"
LAZY_REVIEWS = {
    "otelperf.orm.relationship": "Book.reviews",
    "otelperf.orm.load": "lazy",
    "otelperf.orm.parent_table": "book",
}


def n1_nested_lazy_loads_chain_the_options_on_the_outer_query() -> Scenario:
    """Each author's books, then each book's reviews, all lazily: the reviews' fix is on the
    authors' query (the books were loaded by attribute access, where no option can go)."""
    b = TraceBuilder("GET /authors")
    handler = b.open("list_authors")
    authors = site("app/routes.py", 10, "list_authors")
    b.sql(handler, AUTHORS, 3, site=authors, extra={"db.collection.name": "author"})
    for _ in range(5):
        b.sql(
            handler, BOOKS, 4, site=site("app/routes.py", 12, "list_authors"),
            extra={**LAZY_BOOKS, "db.collection.name": "book"},
        )  # fmt: skip
        for _ in range(2):
            b.sql(
                handler, REVIEWS, 3, site=site("app/routes.py", 13, "list_authors"),
                extra={**LAZY_REVIEWS, "db.collection.name": "review"},
            )  # fmt: skip
    b.close(handler)
    at_authors = "the query at app/routes.py:10 in list_authors()"
    return Scenario(
        "n1_nested_lazy_loads_chain_the_options_on_the_outer_query",
        b.finish(),
        [
            Expected(
                "n_plus_one",
                BOOKS,
                5,
                hex_id(handler),
                hint=(
                    f"add `.options(selectinload(Author.books))` to {at_authors}:"
                    " Author.books is lazily loaded 5 times at app/routes.py:12 in list_authors()"
                ),
            ),
            Expected(
                "n_plus_one",
                REVIEWS,
                10,
                hex_id(handler),
                hint=(
                    f"add `.options(selectinload(Author.books).selectinload(Book.reviews))` to {at_authors}:"
                    " Book.reviews is lazily loaded 10 times at app/routes.py:13 in list_authors()"
                ),
                details={"parent_call_site": "app/routes.py:10 in list_authors()"},
            ),
        ],
    )


def n1_explicit_query_in_a_loop_gets_one_in_query() -> Scenario:
    """A query per row written by hand (no relationship known): the fix is one IN query, shown."""
    b = TraceBuilder("GET /orders")
    handler = b.open("list_orders")
    b.sql(
        handler,
        "SELECT orders.id FROM orders WHERE orders.customer_id = $1",
        4,
        site=site("app/orders.py", 10, "load"),
    )
    for _ in range(6):
        b.sql(handler, ITEMS, 9, site=site("app/orders.py", 21, "Orders.items_of"))
    b.close(handler)
    hint = (
        "run one `IN` query for all of them: SELECT items.id, items.name FROM items"
        " WHERE items.order_id IN (?), instead of the 6 queries at app/orders.py:21 in Orders.items_of()"
    )
    return Scenario(
        "n1_explicit_query_in_a_loop_gets_one_in_query",
        b.finish(),
        [
            Expected(
                "n_plus_one",
                ITEMS_N,
                6,
                hex_id(handler),
                hint=hint,
                call_site="app/orders.py:21 in Orders.items_of()",
                details={"parent_call_site": "app/orders.py:10 in load()"},
            )
        ],
    )


def n1_redis_reads_at_their_line() -> Scenario:
    b = TraceBuilder("GET /feed")
    handler = b.open("feed")
    for _ in range(12):
        b.redis(handler, "HGETALL", 6, site=site("app/feed.py", 7, "feed"))
    b.close(handler)
    return Scenario(
        "n1_redis_reads_at_their_line",
        b.finish(),
        [
            Expected(
                "n_plus_one",
                "HGETALL ?",
                12,
                hex_id(handler),
                kind="redis",
                hint="batch the reads: send the 12 HGETALL calls at app/feed.py:7 in feed() in one pipeline",
                call_site="app/feed.py:7 in feed()",
            )
        ],
    )


def n1_fast_lazy_loads_fill_a_fast_request() -> Scenario:
    """The issue's case: 12 lazy loads of 0.01 ms each, ~1 ms of ORM hydration and Python after
    each, in a 13 ms request. 0.12 ms of statements, but the loop is most of the request."""
    b = TraceBuilder("GET /authors")
    handler = b.open("list_authors")
    b.sql(handler, AUTHORS, 0.2, extra={"db.collection.name": "author"})
    for _ in range(12):
        b.sql(handler, BOOKS, 0.01, extra=LAZY_BOOKS, gap_ms=0.9)
    b.close(handler)
    view = b.finish()
    assert 12 <= (view.root.end_time - view.root.start_time) / MS <= 13.5  # type: ignore[operator]
    return Scenario(
        "n1_fast_lazy_loads_fill_a_fast_request",
        view,
        [Expected("n_plus_one", BOOKS, 12, hex_id(handler), details={"relationship": "Author.books"})],
    )


def ok_fast_loop_in_a_slow_request() -> Scenario:
    """Cheap reads spread thin: 6 lookups of 0.3 ms, ~3 ms apart, in a 250 ms request. Their window
    (~20 ms) is under 50 ms and far under a third of the request."""
    b = TraceBuilder("GET /report")
    handler = b.open("report")
    for _ in range(6):
        b.sql(handler, "SELECT rates.value FROM rates WHERE rates.day = $1", 0.3, gap_ms=3)
    b.app("render", handler, 230)
    b.close(handler)
    return Scenario("ok_fast_loop_in_a_slow_request", b.finish(), [])


def ok_short_loop_in_a_tiny_request() -> Scenario:
    """A loop that is most of a 3 ms request, but only 2.5 ms long: under the share rule's floor."""
    b = TraceBuilder("GET /ping")
    handler = b.open("ping")
    for _ in range(6):
        b.sql(handler, "SELECT flags.on FROM flags WHERE flags.name = $1", 0.05, gap_ms=0.35)
    b.close(handler)
    return Scenario("ok_short_loop_in_a_tiny_request", b.finish(), [])


# --- true slow queries ------------------------------------------------------------------------------

REPORT = "SELECT * FROM orders WHERE customer_id = $1 ORDER BY created_at DESC"
REPORT_N = "SELECT * FROM orders WHERE customer_id = ? ORDER BY created_at DESC"
INDEX_HINT = "check the plan: an index on orders(customer_id) may help"


def slow_warning() -> Scenario:
    b = TraceBuilder("GET /orders")
    handler = b.open("orders")
    slow = b.sql(handler, REPORT, 150)
    b.close(handler)
    return Scenario(
        "slow_warning", b.finish(), [Expected("slow_query", REPORT_N, 1, hex_id(slow), hint=INDEX_HINT)]
    )


def slow_at_threshold() -> Scenario:
    b = TraceBuilder("GET /orders")
    handler = b.open("orders")
    slow = b.sql(handler, REPORT, 100)
    b.close(handler)
    return Scenario("slow_at_threshold", b.finish(), [Expected("slow_query", REPORT_N, 1, hex_id(slow))])


def slow_critical() -> Scenario:
    b = TraceBuilder("GET /stats")
    handler = b.open("stats")
    statement = (
        "SELECT o.customer_id, COUNT(*) FROM orders o JOIN items i ON i.order_id = o.id "
        "GROUP BY o.customer_id"
    )
    slow = b.sql(handler, statement, 1200)
    b.close(handler)
    return Scenario(
        "slow_critical",
        b.finish(),
        [
            Expected(
                "slow_query",
                statement,
                1,
                hex_id(slow),
                severity="critical",
                hint="look at the query plan (EXPLAIN)",
            )
        ],
    )


def slow_same_statement_twice() -> Scenario:
    """Two slow runs of one statement (different values) are one finding on the slowest; fast runs are out."""
    b = TraceBuilder("GET /orders")
    handler = b.open("orders")
    b.sql(handler, "SELECT * FROM orders WHERE customer_id = 7", 120, legacy=True)
    b.sql(handler, "SELECT * FROM orders WHERE customer_id = 8", 3, legacy=True)
    slowest = b.sql(handler, "SELECT * FROM orders WHERE customer_id = 9", 180, legacy=True)
    b.close(handler)
    statement = "SELECT * FROM orders WHERE customer_id = ?"
    return Scenario(
        "slow_same_statement_twice",
        b.finish(),
        [Expected("slow_query", statement, 2, hex_id(slowest), hint=INDEX_HINT)],
    )


def slow_route_override() -> Scenario:
    """A route with a tighter limit: 30 ms is slow on checkout."""
    b = TraceBuilder("POST /checkout")
    handler = b.open("checkout")
    slow = b.sql(handler, "UPDATE stock SET qty = qty - $1 WHERE sku = $2", 30)
    b.close(handler)
    return Scenario(
        "slow_route_override",
        b.finish(),
        [Expected("slow_query", "UPDATE stock SET qty = qty - ? WHERE sku = ?", 1, hex_id(slow))],
        overrides={"POST /checkout": 20},
    )


SESSION = "SELECT sessions.user_id FROM sessions WHERE sessions.token = $1"
SESSION_N = "SELECT sessions.user_id FROM sessions WHERE sessions.token = ?"


def slow_statement_override() -> Scenario:
    """A statement with its own limit (by normalized text): a 15 ms session lookup is slow."""
    b = TraceBuilder("GET /me")
    handler = b.open("me")
    slow = b.sql(handler, SESSION, 15)
    b.sql(handler, "SELECT users.name FROM users WHERE users.id = $1", 15)  # no override: fine
    b.close(handler)
    return Scenario(
        "slow_statement_override",
        b.finish(),
        [
            Expected(
                "slow_query",
                SESSION_N,
                1,
                hex_id(slow),
                hint="check the plan: an index on sessions(token) may help",
            )
        ],
        overrides={SESSION_N: 10},
    )


def slow_fingerprint_override() -> Scenario:
    """The same, keyed by fingerprint (what the findings metric shows)."""
    from otelperf.detectors.fingerprint import fingerprint

    b = TraceBuilder("GET /me")
    handler = b.open("me")
    slow = b.sql(handler, SESSION, 12)
    b.close(handler)
    return Scenario(
        "slow_fingerprint_override",
        b.finish(),
        [Expected("slow_query", SESSION_N, 1, hex_id(slow))],
        overrides={fingerprint(SESSION_N): 10},
    )


# --- look-alikes: nothing to report -----------------------------------------------------------------


def ok_selectinload() -> Scenario:
    b = TraceBuilder("GET /users")
    handler = b.open("users")
    b.sql(handler, "SELECT users.id, users.name FROM users LIMIT $1", 8)
    ids = ", ".join(f"${i}" for i in range(1, 51))
    b.sql(
        handler,
        f"SELECT addresses.user_id, addresses.id FROM addresses WHERE addresses.user_id IN ({ids})",
        30,
    )
    b.close(handler)
    return Scenario("ok_selectinload", b.finish(), [])


def ok_joinedload() -> Scenario:
    b = TraceBuilder("GET /users")
    handler = b.open("users")
    b.sql(
        handler,
        "SELECT users.id, addresses_1.id FROM users LEFT OUTER JOIN addresses AS addresses_1 "
        "ON users.id = addresses_1.user_id",
        40,
    )
    b.close(handler)
    return Scenario("ok_joinedload", b.finish(), [])


def ok_batch_any() -> Scenario:
    """One batched read (= ANY($1)) and one batched Redis MGET."""
    b = TraceBuilder("GET /products")
    handler = b.open("products")
    b.sql(handler, "SELECT products.id FROM products WHERE products.id = ANY($1)", 25)
    b.redis(handler, "MGET", 4)
    b.close(handler)
    return Scenario("ok_batch_any", b.finish(), [])


def ok_cursor_fetch_loop() -> Scenario:
    """A server-side cursor: DECLARE once, FETCH FORWARD many times, CLOSE."""
    b = TraceBuilder("GET /export.csv")
    handler = b.open("export")
    b.sql(handler, 'DECLARE "c_1" CURSOR WITHOUT HOLD FOR SELECT * FROM events', 2)
    for _ in range(12):
        b.sql(handler, 'FETCH FORWARD 1000 FROM "c_1"', 15)
    b.sql(handler, 'CLOSE "c_1"', 1)
    b.close(handler)
    return Scenario("ok_cursor_fetch_loop", b.finish(), [])


def ok_cursor_fetch_spans() -> Scenario:
    """asyncpg's instrumentation: each cursor fetch is a span named CURSOR: carrying the SELECT."""
    b = TraceBuilder("GET /export.json")
    handler = b.open("export")
    for _ in range(8):
        b.sql(handler, "SELECT * FROM events WHERE kind = $1", 12, name="CURSOR: SELECT")
    b.close(handler)
    return Scenario("ok_cursor_fetch_spans", b.finish(), [])


def ok_loop_under_count() -> Scenario:
    b = TraceBuilder("GET /orders")
    handler = b.open("orders")
    for _ in range(4):
        b.sql(handler, ITEMS, 30)
    b.close(handler)
    return Scenario("ok_loop_under_count", b.finish(), [])


def ok_fast_repeated_read() -> Scenario:
    b = TraceBuilder("GET /config")
    handler = b.open("config")
    for _ in range(10):
        b.sql(handler, "SELECT settings.value FROM settings WHERE settings.key = $1", 0.5)
    for _ in range(10):
        b.redis(handler, "GET", 0.5)
    b.close(handler)
    return Scenario("ok_fast_repeated_read", b.finish(), [])


def ok_different_parents() -> Scenario:
    """The same statement under three parents, three times each: under the threshold everywhere."""
    b = TraceBuilder("GET /dashboard")
    for widget in range(3):
        span = b.open(f"widget {widget}")
        for _ in range(3):
            b.sql(span, ITEMS, 20)
        b.close(span)
    return Scenario("ok_different_parents", b.finish(), [])


def ok_distinct_http_paths() -> Scenario:
    """Five calls to five different endpoints are not a loop."""
    b = TraceBuilder("GET /home")
    handler = b.open("home")
    for path in ("users/me", "feed", "notifications", "settings", "recommendations"):
        b.http(handler, "GET", f"http://api.internal/{path}", 20)
    b.close(handler)
    return Scenario("ok_distinct_http_paths", b.finish(), [])


def ok_below_slow_threshold() -> Scenario:
    b = TraceBuilder("GET /orders")
    handler = b.open("orders")
    b.sql(handler, REPORT, 99)
    b.close(handler)
    return Scenario("ok_below_slow_threshold", b.finish(), [])


def ok_route_override_relaxed() -> Scenario:
    """A report route allowed 2 s: a 300 ms query there is expected."""
    b = TraceBuilder("GET /reports/monthly")
    handler = b.open("report")
    b.sql(handler, "SELECT SUM(total) FROM orders WHERE created_at >= $1", 300)
    b.close(handler)
    return Scenario("ok_route_override_relaxed", b.finish(), [], overrides={"GET /reports/monthly": 2000})


def ok_savepoints_per_row() -> Scenario:
    """Transaction control repeated per row (SAVEPOINT / RELEASE) is not a read to batch."""
    b = TraceBuilder("POST /import")
    handler = b.open("import")
    for i in range(8):
        b.sql(handler, f"SAVEPOINT sa_savepoint_{i}", 4)
        b.sql(handler, f"RELEASE SAVEPOINT sa_savepoint_{i}", 4)
    b.close(handler)
    return Scenario("ok_savepoints_per_row", b.finish(), [])


BUILDERS: tuple[Callable[[], Scenario], ...] = (
    n1_plain,
    n1_interleaved,
    n1_with_pool_spans,
    n1_nested,
    n1_per_batch_parents,
    n1_in_lists_of_any_length,
    n1_raw_literals,
    n1_redis_get,
    n1_redis_hgetall_interleaved,
    n1_http_ids_in_path,
    n1_http_uuids,
    n1_lazy_load_names_the_relationship_and_the_parent_query,
    n1_explicit_query_in_a_loop_gets_one_in_query,
    n1_nested_lazy_loads_chain_the_options_on_the_outer_query,
    n1_redis_reads_at_their_line,
    n1_fast_lazy_loads_fill_a_fast_request,
    slow_warning,
    slow_at_threshold,
    slow_critical,
    slow_same_statement_twice,
    slow_route_override,
    slow_statement_override,
    slow_fingerprint_override,
    ok_selectinload,
    ok_joinedload,
    ok_batch_any,
    ok_cursor_fetch_loop,
    ok_cursor_fetch_spans,
    ok_loop_under_count,
    ok_fast_repeated_read,
    ok_different_parents,
    ok_distinct_http_paths,
    ok_below_slow_threshold,
    ok_route_override_relaxed,
    ok_savepoints_per_row,
    ok_fast_loop_in_a_slow_request,
    ok_short_loop_in_a_tiny_request,
)


def run(detector: str, scenario: Scenario, settings: Settings | None = None) -> list[Finding]:
    """What ``detector`` (with the default settings and the scenario's overrides) finds in it."""
    settings = settings or Settings()
    if detector == "slow_query":
        return SlowQueryDetector(settings, None, overrides=scenario.overrides).analyze(scenario.view)
    return NPlusOneDetector(settings, None).analyze(scenario.view)


def score(detector: str) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of ``detector`` over the whole corpus."""
    tp = fp = fn = 0
    for build in BUILDERS:
        scenario = build()
        expected = [e for e in scenario.expected if e.detector == detector]
        found = run(detector, scenario)
        matched = [e for e in expected if any(e.matches(f) for f in found)]
        tp += len(matched)
        fn += len(expected) - len(matched)
        fp += sum(1 for f in found if not any(e.matches(f) for e in expected))
    return tp, fp, fn
