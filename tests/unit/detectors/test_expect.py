"""Expected findings: otelperf.expect() (with, decorators, sync and async, narrowing, tasks) and
[[expected]] in the budgets file, through a real FastAPI app and real SQLAlchemy (SQLite, aiosqlite)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from tests.unit.detectors._asgi_app import acall, call, make_database

import otelperf
from otelperf import _names
from otelperf.budgets import BudgetError, load_budgets
from otelperf.testing import Capture, capture, stop_capture

N1_ITEMS = "SELECT v FROM items WHERE user_id = :u"
N1_NOTES = "SELECT v FROM notes WHERE user_id = :u"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return make_database(tmp_path / "shop.db")


@pytest.fixture
def cap() -> Iterator[Capture]:
    c = capture(detectors="n_plus_one,slow_query", n_plus_one_min_ms=0, budgets_file="none")
    try:
        yield c
    finally:
        stop_capture(c)


def sync_app(db: str) -> FastAPI:
    app = FastAPI()
    engine = create_engine(f"sqlite:///{db}")

    def loop(statement: str) -> None:
        with engine.connect() as conn:
            for _ in range(6):
                conn.execute(text(statement), {"u": 1})

    @otelperf.expect("n_plus_one", reason="decorated helper")
    def decorated() -> None:
        loop(N1_ITEMS)

    @app.get("/with")
    def with_block() -> dict[str, str]:
        with otelperf.expect("n_plus_one", reason="admin page, 6 rows at most"):
            loop(N1_ITEMS)
        return {}

    @app.get("/outside")
    def outside() -> dict[str, str]:
        with otelperf.expect("n_plus_one", reason="only the first"):
            loop(N1_ITEMS)
        loop(N1_NOTES)  # after the block: not expected
        return {}

    @app.get("/decorated")
    def decorated_route() -> dict[str, str]:
        decorated()
        return {}

    @app.get("/narrowed/{table}")
    def narrowed(table: str) -> dict[str, str]:
        with otelperf.expect("n_plus_one", statement=f"FROM {table}", reason="narrowed"):
            loop(N1_ITEMS)
        return {}

    @app.get("/other-detector")
    def other_detector() -> dict[str, str]:
        with otelperf.expect("slow_query", reason="not an N+1 marker"):
            loop(N1_ITEMS)
        return {}

    return app


def n_plus_ones(c: Capture) -> list[otelperf.Finding]:
    return [f for f in c.findings if f.detector == "n_plus_one"]


def test_a_with_block_marks_the_n_plus_one_inside_expected(cap: Capture, db: str) -> None:
    call(sync_app(db), "GET", "/with")
    (finding,) = n_plus_ones(cap)
    assert finding.expected == "admin page, 6 rows at most"
    assert "(expected: admin page, 6 rows at most)" in finding.summary()
    cap.assert_no_n_plus_one()
    cap.assert_no_findings()
    # Counted apart: the findings metric carries expected="true" (the alerts select expected!="true").
    (point,) = cap.metric_points(_names.METRIC_FINDINGS)
    assert point.attributes[_names.FINDINGS_EXPECTED_LABEL] == "true"
    # The finding's event says so in the trace too.
    events = [e for s in cap.spans for e in s.events if e.name == _names.FINDING_EVENT]
    assert [(e.attributes or {}).get(_names.FINDING_EXPECTED) for e in events] == [
        "admin page, 6 rows at most"
    ]


def test_statements_after_the_block_are_not_expected(cap: Capture, db: str) -> None:
    call(sync_app(db), "GET", "/outside")
    by_statement = {f.statement: f for f in n_plus_ones(cap)}
    assert by_statement["SELECT v FROM items WHERE user_id = ?"].expected == "only the first"
    assert by_statement["SELECT v FROM notes WHERE user_id = ?"].expected is None
    with pytest.raises(AssertionError, match="notes"):
        cap.assert_no_n_plus_one()
    points = cap.metric_points(_names.METRIC_FINDINGS)
    assert sorted(str(p.attributes.get(_names.FINDINGS_EXPECTED_LABEL)) for p in points) == ["None", "true"]


def test_a_decorated_sync_function(cap: Capture, db: str) -> None:
    call(sync_app(db), "GET", "/decorated")
    (finding,) = n_plus_ones(cap)
    assert finding.expected == "decorated helper"


@pytest.mark.parametrize(("table", "expected"), [("items", "narrowed"), ("orders", None)])
def test_narrowed_by_statement(cap: Capture, db: str, table: str, expected: str | None) -> None:
    call(sync_app(db), "GET", f"/narrowed/{table}")
    (finding,) = n_plus_ones(cap)
    assert finding.expected == expected


def test_a_marker_for_another_detector_does_not_cover_an_n_plus_one(cap: Capture, db: str) -> None:
    call(sync_app(db), "GET", "/other-detector")
    (finding,) = n_plus_ones(cap)
    assert finding.expected is None


def test_narrowed_by_fingerprint(cap: Capture, db: str) -> None:
    app = sync_app(db)
    call(app, "GET", "/outside")
    fingerprint = next(f.fingerprint for f in n_plus_ones(cap) if "notes" in f.statement)
    cap.clear()
    engine = create_engine(f"sqlite:///{db}")

    @app.get("/by-fingerprint")
    def by_fingerprint() -> dict[str, str]:
        with (
            otelperf.expect("n_plus_one", fingerprint=fingerprint, reason="notes only"),
            engine.connect() as conn,
        ):
            for statement in (N1_ITEMS, N1_NOTES):
                for _ in range(6):
                    conn.execute(text(statement), {"u": 1})
        return {}

    call(app, "GET", "/by-fingerprint")
    by_statement = {f.statement: f.expected for f in n_plus_ones(cap)}
    assert by_statement == {
        "SELECT v FROM items WHERE user_id = ?": None,
        "SELECT v FROM notes WHERE user_id = ?": "notes only",
    }


async def test_async_decorator_and_a_concurrent_task_outside_the_block(cap: Capture, db: str) -> None:
    """Two tasks of one request run at the same time; only the one inside the marker is covered
    (by time alone both would be: the spans' parentage decides)."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    app = FastAPI()

    async def loop(statement: str) -> None:
        async with engine.connect() as conn:
            for _ in range(6):
                await conn.execute(text(statement), {"u": 1})
                await asyncio.sleep(0.001)

    @otelperf.expect("n_plus_one", reason="async helper")
    async def expected_loop() -> None:
        await loop(N1_ITEMS)

    @app.get("/gather")
    async def gather() -> dict[str, str]:
        await asyncio.gather(expected_loop(), loop(N1_NOTES))
        return {}

    try:
        await acall(app, "GET", "/gather")
    finally:
        await engine.dispose()
    by_statement = {f.statement: f.expected for f in n_plus_ones(cap)}
    assert by_statement == {
        "SELECT v FROM items WHERE user_id = ?": "async helper",
        "SELECT v FROM notes WHERE user_id = ?": None,
    }


def test_expected_in_the_budgets_file(tmp_path: Path, db: str) -> None:
    budgets = tmp_path / "otelperf.toml"
    budgets.write_text(
        'service = "shop"\n'
        "[[expected]]\n"
        'detector = "n_plus_one"\n'
        'route = "GET /outside"\n'
        'reason = "known: ticket 42"\n'
    )
    c = capture(detectors="n_plus_one", n_plus_one_min_ms=0, budgets_file=str(budgets))
    try:
        app = sync_app(db)
        call(app, "GET", "/outside")
        call(app, "GET", "/decorated")
        by_route = sorted((f.route, f.statement, f.expected) for f in n_plus_ones(c))
    finally:
        stop_capture(c)
    assert by_route == [
        ("GET /decorated", "SELECT v FROM items WHERE user_id = ?", "decorated helper"),
        # the file's reason wins over the marker's for the route it names
        ("GET /outside", "SELECT v FROM items WHERE user_id = ?", "known: ticket 42"),
        ("GET /outside", "SELECT v FROM notes WHERE user_id = ?", "known: ticket 42"),
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('detector = "n_plus_one"\nroute = "GET /x"\n', "reason: entry 1: missing"),
        ('detector = "n_plus_one"\nreason = "r"\n', "too broad"),
        ('detector = "n_plus_won"\nroute = "GET /x"\nreason = "r"\n', "invalid value 'n_plus_won'"),
        ('detector = "n_plus_one"\nroute = "orders"\nreason = "r"\n', "not a route"),
        ('detector = "n_plus_one"\nroute = "GET /x"\nreason = "r"\nwhy = 1\n', "unknown key"),
    ],
)
def test_bad_expected_entries_are_budget_errors(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "otelperf.toml"
    path.write_text("[[expected]]\n" + entry)
    with pytest.raises(BudgetError, match=message):
        load_budgets(path)


def test_expected_entries_are_read(tmp_path: Path) -> None:
    path = tmp_path / "otelperf.toml"
    path.write_text(
        '[[expected]]\ndetector = "slow_query"\nfingerprint = "abc"\nreason = "nightly export"\n'
        '[[expected]]\ndetector = "n_plus_one"\nroute = "get /admin"\nreason = "admin"\n'
    )
    first, second = load_budgets(path).expected
    assert (first.detector, first.route, first.fingerprint, first.reason) == (
        "slow_query",
        None,
        "abc",
        "nightly export",
    )
    assert (second.route, second.fingerprint) == ("GET /admin", None)
    assert second.matches("n_plus_one", "GET /admin", "anything")
    assert not second.matches("slow_query", "GET /admin", "anything")


def test_without_a_running_otelperf_expect_does_nothing() -> None:
    with otelperf.expect("n_plus_one"):
        pass

    @otelperf.expect("slow_query")
    def f(x: int) -> int:
        return x + 1

    assert f(1) == 2


def test_an_unknown_detector_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="unknown detector 'n_plus_won'"):
        otelperf.expect("n_plus_won")


def test_the_marker_is_a_span_in_the_trace_with_the_statements_under_it(cap: Capture, db: str) -> None:
    call(sync_app(db), "GET", "/with")
    spans = cap.spans
    (marker,) = [s for s in spans if s.name == _names.EXPECT_SPAN]
    (server,) = [s for s in spans if s.name == "GET /with"]
    assert marker.parent is not None and marker.parent.span_id == server.context.span_id
    assert dict(marker.attributes or {}) == {
        _names.EXPECT_DETECTOR: "n_plus_one",
        _names.EXPECT_REASON: "admin page, 6 rows at most",
    }
    trace_id = server.context.trace_id
    statements = [
        s for s in spans if (s.attributes or {}).get("db.query.text") and s.context.trace_id == trace_id
    ]
    assert len(statements) == 6
    assert all(s.parent is not None and s.parent.span_id == marker.context.span_id for s in statements)
    assert server.start_time <= marker.start_time <= marker.end_time <= server.end_time


def test_nested_markers_and_a_thread_started_inside(cap: Capture, db: str) -> None:
    import contextvars
    import threading

    app = FastAPI()
    engine = create_engine(f"sqlite:///{db}")

    def loop(statement: str) -> None:
        with engine.connect() as conn:
            for _ in range(6):
                conn.execute(text(statement), {"u": 1})

    @app.get("/nested")
    def nested() -> dict[str, str]:
        with otelperf.expect("n_plus_one", statement="FROM notes", reason="outer"):
            with otelperf.expect("n_plus_one", statement="FROM items", reason="inner"):
                loop(N1_ITEMS)
            # A thread started with the block's context (as run_in_threadpool does) is covered.
            worker = threading.Thread(target=contextvars.copy_context().run, args=(loop, N1_NOTES))
            worker.start()
            worker.join()
        loop(N1_ITEMS.replace("v FROM", "id FROM"))  # after both blocks: not covered
        return {}

    call(app, "GET", "/nested")
    by_statement = {f.statement: f.expected for f in n_plus_ones(cap)}
    assert by_statement == {
        "SELECT v FROM items WHERE user_id = ?": "inner",
        "SELECT v FROM notes WHERE user_id = ?": "outer",
        "SELECT id FROM items WHERE user_id = ?": None,
    }
