"""EXPLAIN of slow SELECTs against a real PostgreSQL, from a sync (psycopg) and an async (asyncpg) engine.

The worker's real sessions are wrapped to record what they send, so the tests can say exactly
which statements reached the database, on which backend, and how often.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from otelperf.detectors import _explain_session, explain
from otelperf.detectors._api import Finding
from otelperf.testing import Capture, capture, stop_capture

pytestmark = pytest.mark.postgres

ROWS = 200_000


class Watched:
    """A real explain session that records every statement it sends and the backend it talks to."""

    def __init__(self, session: _explain_session.Session, log: Watch) -> None:
        self._session = session
        self._log = log

    def execute(self, sql: str) -> None:
        self._log.sql.append(sql)
        self._session.execute(sql)

    def value(self, sql: str) -> Any:
        self._log.sql.append(sql)
        result = self._session.value(sql)
        if sql == "SELECT pg_backend_pid()":
            self._log.pids.append(int(result))
        return result

    def close(self) -> None:
        self._session.close()


class Watch:
    def __init__(self) -> None:
        self.sql: list[str] = []
        self.pids: list[int] = []
        self.session_settings: list[tuple[str, str, str]] = []

    def __call__(self, target: _explain_session.Target, statement_timeout_ms: int) -> Watched:
        session = _explain_session.connect(target, statement_timeout_ms)
        self.session_settings.append(
            tuple(  # type: ignore[arg-type]
                session.value(f"SELECT current_setting('{name}')")
                for name in ("application_name", "default_transaction_read_only", "statement_timeout")
            )
        )
        return Watched(session, self)

    def explains_of(self, fingerprint: str) -> list[str]:
        name = f"otelperf_explain_{fingerprint}"
        return [s for s in self.sql if s.startswith(("EXPLAIN", "PREPARE")) and name in s]


@pytest.fixture
def table(postgres_url: str) -> Iterator[str]:
    """A table of ROWS orders without an index on customer_id: a SELECT by customer is a Seq Scan."""
    name = f"otelperf_explain_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.execute(
            text(f"CREATE TABLE {name} (id serial PRIMARY KEY, customer_id int NOT NULL, total int)")
        )
        conn.execute(
            text(
                f"INSERT INTO {name} (customer_id, total) SELECT g % 5000, g"
                f" FROM generate_series(1, {ROWS}) g"
            )
        )
        conn.execute(text(f"ANALYZE {name}"))
    yield name
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    engine.dispose()


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Watch:
    watch = Watch()
    monkeypatch.setattr(explain.shared_worker(), "connect", watch)
    return watch


@pytest.fixture
def cap() -> Iterator[Capture]:
    c = capture(slow_query_ms=2)  # the seq scan over ROWS rows takes ~10 ms
    try:
        yield c
    finally:
        stop_capture(c)


def slow_findings(cap: Capture, statement: str) -> list[Finding]:
    return [f for f in cap.findings if f.detector == "slow_query" and f.statement == statement]


def until(condition: Callable[[], bool], run_request: Callable[[], None], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        run_request()
        if condition():
            return
        assert time.monotonic() < deadline, "no finding with a plan in time"
        time.sleep(0.3)


def check_explained_once(cap: Capture, watch: Watch, table: str, app_pids: set[int]) -> None:
    statement = f"SELECT * FROM {table} WHERE customer_id = ?"
    findings = slow_findings(cap, statement)
    assert "plan" not in findings[0].details  # the first finding only asks; it never waits
    with_plan = [f for f in findings if "plan" in f.details]
    assert with_plan
    for finding in with_plan:
        assert finding.details["plan"] == f"Seq Scan on {table}"
        assert finding.hint == f"Seq Scan on {table}: add an index on {table}(customer_id)"
        assert finding.details["db_system"] == "postgresql"
    # One EXPLAIN of this shape, however many findings, on a backend that is not one of the app's,
    # of a session that is read-only with a statement timeout.
    assert watch.explains_of(findings[0].fingerprint) == [
        f"PREPARE otelperf_explain_{findings[0].fingerprint} AS SELECT * FROM {table} WHERE customer_id = $1",
        f"EXPLAIN (FORMAT JSON) EXECUTE otelperf_explain_{findings[0].fingerprint}(NULL)",
    ]
    assert watch.pids and not set(watch.pids) & app_pids
    assert ("otelperf-explain", "on", "2s") in watch.session_settings
    # Nothing of it went through the app's engine: no span shows it.
    texts = [str((s.attributes or {}).get("db.query.text", "")) for s in cap.spans]
    assert not [t for t in texts if "EXPLAIN" in t or "PREPARE" in t]


def test_sync_engine_slow_select_gets_its_plan(
    cap: Capture, watch: Watch, table: str, postgres_url: str
) -> None:
    engine = sqlalchemy.create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"))
    tracer = cap.runtime.tracer
    assert tracer is not None
    app_pids: set[int] = set()
    statement = f"SELECT * FROM {table} WHERE customer_id = ?"

    def request() -> None:
        with tracer.start_as_current_span("GET /orders"), engine.connect() as conn:
            app_pids.add(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            conn.execute(text(f"SELECT * FROM {table} WHERE customer_id = :c"), {"c": 7}).all()

    try:
        until(lambda: any("plan" in f.details for f in slow_findings(cap, statement)), request)
        for _ in range(3):  # later findings keep the plan, and nothing is explained again
            request()
        assert sum("plan" in f.details for f in slow_findings(cap, statement)) >= 4
        check_explained_once(cap, watch, table, app_pids)
    finally:
        engine.dispose()


async def test_asyncpg_engine_slow_select_gets_its_plan(
    cap: Capture, watch: Watch, table: str, postgres_url: str
) -> None:
    engine = create_async_engine(make_url(postgres_url).set(drivername="postgresql+asyncpg"))
    tracer = cap.runtime.tracer
    assert tracer is not None
    app_pids: set[int] = set()
    statement = f"SELECT * FROM {table} WHERE customer_id = ?"

    async def request() -> None:
        with tracer.start_as_current_span("GET /orders"):
            async with engine.connect() as conn:
                app_pids.add((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
                (await conn.execute(text(f"SELECT * FROM {table} WHERE customer_id = :c"), {"c": 7})).all()

    try:
        deadline = time.monotonic() + 20
        while not any("plan" in f.details for f in slow_findings(cap, statement)):
            assert time.monotonic() < deadline, "no finding with a plan in time"
            await request()
            await asyncio.sleep(0.3)
        await request()
        check_explained_once(cap, watch, table, app_pids)
    finally:
        await engine.dispose()


def test_update_is_never_explained(cap: Capture, watch: Watch, table: str, postgres_url: str) -> None:
    engine = sqlalchemy.create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"))
    tracer = cap.runtime.tracer
    assert tracer is not None
    statement = f"UPDATE {table} SET total = total + ? WHERE customer_id = ?"
    worker = explain.shared_worker()
    ineligible = worker.stats.ineligible
    try:
        for _ in range(3):
            with tracer.start_as_current_span("POST /orders"), engine.begin() as conn:
                conn.execute(text(f"UPDATE {table} SET total = total + 1 WHERE customer_id = :c"), {"c": 7})
        findings = slow_findings(cap, statement)
        assert len(findings) == 3  # slow, and reported...
        assert worker.wait_idle(10)
        time.sleep(1.2)  # longer than the rate limit: anything queued would have run by now
        assert worker.stats.ineligible - ineligible == 3
        assert not [s for s in watch.sql if "UPDATE" in s]  # ...but never sent to EXPLAIN
        assert all("plan" not in f.details for f in findings)
    finally:
        engine.dispose()


@pytest.mark.parametrize("session_class", ["_LibpqSession", "_AsyncpgSession"])
def test_both_session_kinds_plan_read_only(session_class: str, table: str, postgres_url: str) -> None:
    """psycopg (libpq) and asyncpg, the latter for apps without a libpq driver, give the same plan."""
    engine = sqlalchemy.create_engine(make_url(postgres_url).set(drivername="postgresql+asyncpg"))
    explain.register_engine(engine.dialect, engine.url)
    try:
        url = engine.url
        target = explain.target_for(
            {"server.address": url.host, "server.port": url.port, "db.namespace": url.database}
        )
        assert target is not None
        session = getattr(_explain_session, session_class)(target, 2000)
        try:
            statement, parameters = explain.positional(f"SELECT * FROM {table} WHERE customer_id = ? LIMIT ?")
            raw, pid = _explain_session.explain(session, statement, parameters, "otelperf_explain_test")
            assert session.value("SELECT pg_backend_pid()") == pid
            deallocated = "SELECT count(*) FROM pg_prepared_statements WHERE name = 'otelperf_explain_test'"
            assert session.value(deallocated) == 0
            with pytest.raises(Exception, match="read-only transaction"):
                session.execute(f"UPDATE {table} SET total = 0 WHERE false")
        finally:
            session.close()
    finally:
        explain.clear_targets()
    plan = explain.summarize_plan(raw)
    assert plan is not None
    assert (plan.root, plan.headline, plan.seq_scans) == ("Limit", f"Seq Scan on {table}", (table,))
