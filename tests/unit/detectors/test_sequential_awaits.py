"""The sequential_awaits detector: labeled routes of a real FastAPI app on real SQLAlchemy (aiosqlite
for the async routes, SQLite for the sync one), through the whole pipeline; then span-built cases.

Each statement sleeps 30 ms in the database (a SQLite function), so that what gather would save is
well above the 20 ms threshold where the scenario says it should be found."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from tests.unit.detectors._asgi_app import acall, call
from tests.unit.detectors.corpus_sql import TraceBuilder

from otelperf import _names
from otelperf.config import Settings
from otelperf.detectors.sequential_awaits import SequentialAwaitsDetector
from otelperf.testing import Capture, capture, stop_capture

SLEEP_MS = 30
TABLES = ("products", "categories", "banners", "users", "orders", "order_items")


def _sleep_ms(ms: int) -> int:
    time.sleep(ms / 1000)
    return 0


def _with_sleep(engine: Any) -> None:
    @event.listens_for(engine, "connect")
    def register(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.create_function("sleep_ms", 1, _sleep_ms)


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(
                text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, user_id INT, order_id INT, v INT)")
            )
            conn.execute(
                text(f"INSERT INTO {table} (user_id, order_id, v) VALUES (1, 1, 1), (1, 2, 2), (2, 3, 3)")
            )
    engine.dispose()
    return str(path)


@pytest.fixture
def cap() -> Iterator[Capture]:
    c = capture(detectors="sequential_awaits", budgets_file="none")
    try:
        yield c
    finally:
        stop_capture(c)


@pytest.fixture
async def aengine(db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    _with_sleep(engine.sync_engine)
    try:
        yield engine
    finally:
        await engine.dispose()


PRODUCT = f"SELECT v, sleep_ms({SLEEP_MS}) FROM products WHERE id = :id"
CATEGORY = f"SELECT v, sleep_ms({SLEEP_MS}) FROM categories WHERE id = :id"
BANNERS = f"SELECT count(*), sleep_ms({SLEEP_MS}) FROM banners"
USER = f"SELECT id, sleep_ms({SLEEP_MS}) FROM users WHERE v = :id"
ORDERS_OF_USER = f"SELECT id, sleep_ms({SLEEP_MS}) FROM orders WHERE user_id = :id"
ITEMS_OF_ORDERS = f"SELECT v, sleep_ms({SLEEP_MS}) FROM order_items WHERE order_id IN (:a, :b)"
FAST = ("SELECT v FROM products WHERE id = :id", "SELECT v FROM categories WHERE id = :id")


def app_on(engine: AsyncEngine) -> FastAPI:
    app = FastAPI()

    async def one(statement: str, **params: Any) -> Any:
        async with engine.connect() as conn:
            return (await conn.execute(text(statement), params)).first()

    @app.get("/independent")  # FINDING: three reads of unrelated tables, one after another
    async def independent() -> dict[str, str]:
        async with engine.connect() as conn:
            await conn.execute(text(PRODUCT), {"id": 1})
            await conn.execute(text(CATEGORY), {"id": 1})
            await conn.execute(text(BANNERS))
        return {}

    @app.get("/separate-sessions")  # FINDING: own connections already, still awaited in turn
    async def separate_sessions() -> dict[str, str]:
        await one(PRODUCT, id=1)
        await one(CATEGORY, id=1)
        return {}

    @app.get("/gathered")  # clean: already concurrent
    async def gathered() -> dict[str, str]:
        await asyncio.gather(one(PRODUCT, id=1), one(CATEGORY, id=1), one(BANNERS))
        return {}

    @app.get("/dependent")  # clean: each read takes its parameter from the previous result
    async def dependent() -> dict[str, str]:
        async with engine.connect() as conn:
            user = (await conn.execute(text(USER), {"id": 1})).first()
            assert user is not None
            orders = (await conn.execute(text(ORDERS_OF_USER), {"id": user[0]})).all()
            await conn.execute(text(ITEMS_OF_ORDERS), {"a": orders[0][0], "b": orders[-1][0]})
        return {}

    @app.get("/transaction")  # clean: reads around a write in one transaction keep their order
    async def transaction() -> dict[str, str]:
        async with engine.begin() as conn:
            await conn.execute(text(PRODUCT), {"id": 1})
            await conn.execute(text("UPDATE products SET v = v + 1 WHERE id = :id"), {"id": 1})
            await conn.execute(text(CATEGORY), {"id": 1})
            await conn.execute(text(BANNERS))
        return {}

    @app.get("/fast")  # clean: concurrency would save well under the threshold
    async def fast() -> dict[str, str]:
        async with engine.connect() as conn:
            for statement in FAST:
                await conn.execute(text(statement), {"id": 1})
        return {}

    @app.get("/same-shape")  # clean: one statement shape repeated is the N+1 detector's
    async def same_shape() -> dict[str, str]:
        async with engine.connect() as conn:
            for product_id in (1, 2, 3):
                await conn.execute(text(PRODUCT), {"id": product_id})
        return {}

    return app


def found(c: Capture) -> list[Any]:
    return [f for f in c.findings if f.detector == "sequential_awaits"]


def independent_line(name: str) -> int:
    """The line of ``await conn.execute(text(<name>)...`` in the /independent route's source."""
    lines = Path(__file__).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "async def independent()" in line)
    return next(i + 1 for i in range(start, len(lines)) if f"execute(text({name})" in lines[i])


async def test_three_independent_reads_awaited_in_turn(cap: Capture, aengine: AsyncEngine) -> None:
    await acall(app_on(aengine), "GET", "/independent")
    (finding,) = found(cap)
    assert finding.route == "GET /independent"
    assert finding.count == 3
    assert finding.statement == "3 sequential reads: SELECT products, SELECT categories, SELECT banners"
    # gather would save the sum minus the longest: two of the three 30 ms sleeps
    assert 2 * SLEEP_MS <= finding.duration_ms < 2 * SLEEP_MS + 40
    assert finding.details["saving_ms"] == pytest.approx(
        finding.details["sum_ms"] - finding.details["max_ms"], abs=0.01
    )
    assert "asyncio.gather()" in finding.hint and "own session/connection" in finding.hint
    server = next(s for s in cap.spans if s.name == "GET /independent")
    assert finding.anchor_span_id == format(server.context.span_id, "016x")
    # Where the sequence starts, and each read's own line (the three awaits in independent()).
    first = independent_line("PRODUCT")
    assert finding.details["code.function.name"] == "app_on.<locals>.independent"
    assert finding.details["code.line.number"] == first
    assert [site.rsplit(":", 1)[1] for site in finding.details["call_sites"]] == [
        f"{line} in app_on.<locals>.independent()" for line in (first, first + 1, first + 2)
    ]
    with pytest.raises(AssertionError, match="3 sequential reads"):
        cap.assert_no_findings("sequential_awaits")


async def test_separate_sessions_awaited_in_turn(cap: Capture, aengine: AsyncEngine) -> None:
    await acall(app_on(aengine), "GET", "/separate-sessions")
    (finding,) = found(cap)
    assert finding.count == 2
    assert SLEEP_MS <= finding.duration_ms < SLEEP_MS + 30


@pytest.mark.parametrize("path", ["/gathered", "/dependent", "/transaction", "/fast", "/same-shape"])
async def test_non_findings(cap: Capture, aengine: AsyncEngine, path: str) -> None:
    await acall(app_on(aengine), "GET", path)
    assert [s for s in cap.spans if (s.attributes or {}).get(_names.DB_ASYNC) is True], (
        "no async statements ran"
    )
    cap.assert_no_findings("sequential_awaits")


def test_a_sync_route_is_not_flagged(db: str, cap: Capture) -> None:
    engine = create_engine(f"sqlite:///{db}")
    _with_sleep(engine)
    app = FastAPI()

    @app.get("/sync")
    def sync_route() -> dict[str, str]:
        with engine.connect() as conn:
            conn.execute(text(PRODUCT), {"id": 1})
            conn.execute(text(CATEGORY), {"id": 1})
            conn.execute(text(BANNERS))
        return {}

    call(app, "GET", "/sync")
    db_spans = [s for s in cap.spans if (s.attributes or {}).get("db.query.text")]
    assert len(db_spans) == 3 and not any((s.attributes or {}).get(_names.DB_ASYNC) for s in db_spans)
    cap.assert_no_findings("sequential_awaits")


async def test_expected_marker_covers_it(cap: Capture, aengine: AsyncEngine) -> None:
    import otelperf

    app = app_on(aengine)

    @app.get("/snapshot")
    async def snapshot() -> dict[str, str]:
        with otelperf.expect("sequential_awaits", reason="one REPEATABLE READ snapshot"):
            async with aengine.connect() as conn:
                await conn.execute(text(PRODUCT), {"id": 1})
                await conn.execute(text(CATEGORY), {"id": 1})
        return {}

    await acall(app, "GET", "/snapshot")
    # Under the marker the reads' parent is the marker span: still found, and expected.
    (finding,) = found(cap)
    assert finding.expected == "one REPEATABLE READ snapshot"
    cap.assert_no_findings()


# --- span-built cases: what SQLite cannot show (locks, an HTTP call between, no table) -----------


def _async_sql(b: TraceBuilder, parent: Any, statement: str, ms: float, table: str) -> None:
    verb = statement.split(" ", 1)[0].upper()
    b.leaf(
        f"{verb} {table}",
        parent,
        ms,
        {
            "db.system.name": "postgresql",
            "otelperf.component": "db",
            "db.query.text": statement,
            "db.operation.name": verb,
            "db.collection.name": table,
            _names.DB_ASYNC: True,
        },
    )


def _analyze(b: TraceBuilder) -> list[Any]:
    return SequentialAwaitsDetector(Settings()).analyze(b.finish())


def test_span_built_finding_and_threshold() -> None:
    b = TraceBuilder("GET /home")
    _async_sql(b, b.root, "SELECT * FROM products WHERE id = $1", 40, "products")
    _async_sql(b, b.root, "SELECT * FROM banners", 25, "banners")
    (finding,) = _analyze(b)
    assert finding.duration_ms == pytest.approx(25)
    b = TraceBuilder("GET /home")
    _async_sql(b, b.root, "SELECT * FROM products WHERE id = $1", 40, "products")
    _async_sql(b, b.root, "SELECT * FROM banners", 15, "banners")
    assert _analyze(b) == []  # saves 15 ms < 20 ms


def test_span_built_lock_makes_the_parent_a_transaction() -> None:
    b = TraceBuilder("POST /checkout")
    _async_sql(b, b.root, "SELECT * FROM products WHERE id = $1 FOR UPDATE", 40, "products")
    _async_sql(b, b.root, "SELECT * FROM banners", 40, "banners")
    _async_sql(b, b.root, "SELECT * FROM categories WHERE id = $1", 40, "categories")
    assert _analyze(b) == []


def test_span_built_http_call_between_ends_the_run() -> None:
    b = TraceBuilder("GET /home")
    _async_sql(b, b.root, "SELECT * FROM products WHERE id = $1", 40, "products")
    b.http(b.root, "GET", "http://pricing.internal/price", 10)
    _async_sql(b, b.root, "SELECT * FROM banners", 40, "banners")
    assert _analyze(b) == []


def test_span_built_foreign_key_either_way_is_dependent() -> None:
    b = TraceBuilder("GET /orders/{id}")
    _async_sql(b, b.root, "SELECT id, customer_id FROM orders WHERE id = $1", 40, "orders")
    _async_sql(b, b.root, "SELECT * FROM customers WHERE id = $1", 40, "customers")
    assert _analyze(b) == []


def test_disabled_by_the_detectors_setting() -> None:
    c = capture(detectors="n_plus_one", budgets_file="none")
    try:
        names = [type(d).__name__ for d in c.runtime.detector_processor._detectors]  # type: ignore[union-attr]
    finally:
        stop_capture(c)
    assert "SequentialAwaitsDetector" not in names
    assert "sequential_awaits" in Settings().detectors


@pytest.mark.parametrize(
    "placeholder",
    ["$1", "%s", "%(customer_id)s", ":customer_id", "?"],
    ids=["numeric", "format", "pyformat", "named", "qmark"],
)
def test_span_built_dependence_in_every_parameter_style(placeholder: str) -> None:
    b = TraceBuilder("GET /customers/{id}")
    _async_sql(b, b.root, "SELECT * FROM customers WHERE email = $1", 40, "customers")
    _async_sql(b, b.root, f"SELECT * FROM orders WHERE customer_id = {placeholder}", 40, "orders")
    assert _analyze(b) == []
    b = TraceBuilder("GET /customers/{id}")
    _async_sql(b, b.root, "SELECT * FROM customers WHERE email = $1", 40, "customers")
    _async_sql(b, b.root, "SELECT * FROM orders WHERE customer_id IS NOT NULL::bool", 40, "orders")
    (finding,) = _analyze(b)  # no parameter in the second (a cast is no parameter): independent
    assert finding.count == 2
