"""SQLAlchemy instrumentation against a real PostgreSQL: psycopg (sync) and asyncpg (async)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from otelperf.testing import Capture

pytestmark = pytest.mark.postgres

SECRET = "pg-canary-s3cr3t"


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _pg_spans(cap: Capture) -> list[ReadableSpan]:
    return [s for s in cap.spans if _attrs(s).get("db.system.name") == "postgresql"]


@pytest.fixture
def table() -> str:
    """A table name of this test alone: other suites share the database."""
    return f"otelperf_sa_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sync_engine(postgres_url: str, table: str) -> Iterator[Engine]:
    engine = sqlalchemy.create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (id serial PRIMARY KEY, name text NOT NULL)"))
    yield engine
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


@pytest.fixture
async def async_engine(postgres_url: str, table: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(make_url(postgres_url).set(drivername="postgresql+asyncpg"))
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {table} (id serial PRIMARY KEY, name text NOT NULL)"))
    yield engine
    async with engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    await engine.dispose()


def test_psycopg_spans_carry_connection_attributes_and_sanitized_text(
    otelperf_capture: Capture, sync_engine: Engine, table: str, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    otelperf_capture.clear()
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with tracer.start_as_current_span("handler") as parent, sync_engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {table} (name) VALUES ('{SECRET}'), ($${SECRET}$$)"))
        conn.execute(text(f"INSERT INTO {table} (name) VALUES (:name)"), [{"name": SECRET}, {"name": "b"}])
        names = conn.execute(text(f"SELECT name FROM {table} WHERE name = E'{SECRET}'")).scalars().all()
    assert names == [SECRET, SECRET, SECRET]
    spans = _pg_spans(otelperf_capture)
    assert [s.name for s in spans] == [f"INSERT {table}", f"INSERT {table}", f"SELECT {table}"]
    assert [_attrs(s)["db.query.text"] for s in spans] == [
        f"INSERT INTO {table} (name) VALUES (?), (?)",
        f"INSERT INTO {table} (name) VALUES (%(name)s)",  # executemany: one span, the driver's placeholder
        f"SELECT name FROM {table} WHERE name = ?",
    ]
    for span in spans:
        attrs = _attrs(span)
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
        assert attrs["db.namespace"] == url.database
        assert attrs["server.address"] == url.host
        assert attrs["server.port"] == url.port
        assert attrs["db.system.name"] == "postgresql"
        assert "db.statement" not in attrs  # legacy names only on request (OTEL_SEMCONV_STABILITY_OPT_IN)
        assert attrs["db.collection.name"] == table
        assert not any(SECRET in str(v) for v in attrs.values())
        assert not any(f"{url.username}@" in str(v) for v in attrs.values())


def test_psycopg_error_reports_type_and_sqlstate_only(otelperf_capture: Capture, sync_engine: Engine) -> None:
    otelperf_capture.clear()
    with pytest.raises(sqlalchemy.exc.ProgrammingError) as caught, sync_engine.connect() as conn:
        conn.execute(text(f"SELECT * FROM otelperf_missing_table WHERE x = '{SECRET}'"))
    assert type(caught.value.orig).__name__ == "UndefinedTable"
    [span] = _pg_spans(otelperf_capture)
    assert span.status.status_code is StatusCode.ERROR
    error_type = "psycopg.errors.UndefinedTable"
    assert _attrs(span)["error.type"] == error_type
    assert _attrs(span)["db.response.status_code"] == "42P01"
    assert [dict(e.attributes or {}) for e in span.events] == [{"exception.type": error_type}]
    assert SECRET not in str(_attrs(span))


def test_psycopg_duration_metric(
    otelperf_capture: Capture, sync_engine: Engine, table: str, postgres_url: str
) -> None:
    with sync_engine.connect() as conn:
        for _ in range(3):
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    points = [
        p
        for p in otelperf_capture.metric_points("db.client.operation.duration")
        if p.attributes.get("db.system.name") == "postgresql"
        and p.attributes.get("db.operation.name") == "SELECT"
    ]
    [point] = points
    assert point.attributes == {
        "db.system.name": "postgresql",
        "db.namespace": make_url(postgres_url).database,
        "db.operation.name": "SELECT",
    }
    assert point.count == 3
    assert 0 < point.sum < 5


async def test_asyncpg_gather_two_concurrent_queries_under_one_parent(
    otelperf_capture: Capture, async_engine: AsyncEngine, table: str, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    otelperf_capture.clear()

    async def slow_query(label: str) -> str:
        async with async_engine.connect() as conn:
            result = await conn.execute(text(f"SELECT '{label}' AS label, pg_sleep(0.2)"))
            return str(result.scalar_one())

    with tracer.start_as_current_span("request") as parent:
        labels = await asyncio.gather(slow_query(SECRET), slow_query("other"))
    assert labels == [SECRET, "other"]
    [request] = otelperf_capture.spans_named("request")
    children = otelperf_capture.children_of(request)
    assert len(children) == 2
    for span in children:
        attrs = _attrs(span)
        assert span.name == "SELECT"
        assert span.context.trace_id == parent.get_span_context().trace_id
        assert attrs["db.query.text"] == "SELECT ? AS label, pg_sleep(?)"
        assert attrs["db.namespace"] == url.database
        assert attrs["server.port"] == url.port
    # They ran concurrently: each started before the other ended.
    first, second = children
    assert first.start_time is not None and second.start_time is not None
    assert first.end_time is not None and second.end_time is not None
    assert first.start_time < second.end_time and second.start_time < first.end_time


async def test_asyncpg_statements_error_and_metric(
    otelperf_capture: Capture, async_engine: AsyncEngine, table: str
) -> None:
    otelperf_capture.clear()
    async with async_engine.begin() as conn:
        await conn.execute(text(f"INSERT INTO {table} (name) VALUES (:name)"), {"name": SECRET})
        rows = (await conn.execute(text(f"SELECT id, name FROM {table}"))).all()
    assert [r.name for r in rows] == [SECRET]
    with pytest.raises(sqlalchemy.exc.ProgrammingError):
        async with async_engine.connect() as conn:
            await conn.execute(text(f"SELECT nope FROM {table} WHERE name = '{SECRET}'"))
    spans = [s for s in _pg_spans(otelperf_capture) if table in s.name]
    assert [s.name for s in spans] == [f"INSERT {table}", f"SELECT {table}", f"SELECT {table}"]
    assert [s.status.status_code for s in spans] == [StatusCode.UNSET, StatusCode.UNSET, StatusCode.ERROR]
    failed = _attrs(spans[-1])
    assert failed["db.query.text"] == f"SELECT nope FROM {table} WHERE name = ?"
    # the driver's own class, not SQLAlchemy's PEP 249 adapter around it
    assert failed["error.type"] == "asyncpg.exceptions.UndefinedColumnError"
    assert failed["db.response.status_code"] == "42703"  # undefined_column
    assert all(SECRET not in str(_attrs(s)) for s in spans)
    errors = [
        p
        for p in otelperf_capture.metric_points("db.client.operation.duration")
        if p.attributes.get("error.type") == failed["error.type"]
    ]
    assert [p.count for p in errors] == [1]


async def test_first_connect_checks_and_pool_checkouts_make_no_span(
    otelperf_capture: Capture, postgres_url: str
) -> None:
    # On its first connection a PostgreSQL dialect runs its own queries (server version, current
    # schema, standard_conforming_strings) through the same dialect methods as the app's: they are
    # part of connecting and get no span, like the pool's connects and checkouts.
    url = make_url(postgres_url)
    sync_engine = sqlalchemy.create_engine(url.set(drivername="postgresql+psycopg"))
    async_engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
    otelperf_capture.clear()
    try:
        for _ in range(2):
            with sync_engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            async with async_engine.connect() as aconn:
                await aconn.execute(text("SELECT 2"))
    finally:
        sync_engine.dispose()
        await async_engine.dispose()
    assert [_attrs(s)["db.query.text"] for s in _pg_spans(otelperf_capture)] == ["SELECT ?"] * 4
    assert all(s.kind is SpanKind.CLIENT for s in otelperf_capture.spans)
    assert len(otelperf_capture.spans) == 4


def test_insertmanyvalues_is_one_span_per_batch(
    otelperf_capture: Capture, postgres_url: str, table: str
) -> None:
    engine = sqlalchemy.create_engine(
        make_url(postgres_url).set(drivername="postgresql+psycopg"), insertmanyvalues_page_size=10
    )
    rows = sqlalchemy.Table(
        table,
        sqlalchemy.MetaData(),
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("name", sqlalchemy.Text, nullable=False),
    )
    try:
        with engine.begin() as conn:
            rows.create(conn)
        otelperf_capture.clear()
        with engine.begin() as conn:
            ids = conn.execute(rows.insert().returning(rows.c.id), [{"name": SECRET}] * 25).scalars().all()
        assert len(ids) == 25
        spans = _pg_spans(otelperf_capture)
        # 25 rows in pages of 10: three INSERT statements reach the server, three spans
        assert [s.name for s in spans] == [f"INSERT {table}"] * 3
        assert all(s.status.status_code is StatusCode.UNSET for s in spans)
        assert all(SECRET not in str(_attrs(s)) for s in spans)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


# --- N+1 of ORM relationships: the relationship, the lines and the exact fix ----------------------


OPTION = "`.options(selectinload(Author.books))`"


def _library(suffix: str) -> tuple[type, type, type]:
    """Declarative Author/Book models on tables of this test alone."""
    from sqlalchemy import Column, ForeignKey, Integer
    from sqlalchemy.ext.asyncio import AsyncAttrs
    from sqlalchemy.orm import DeclarativeBase, relationship

    class Base(AsyncAttrs, DeclarativeBase):
        pass

    class Author(Base):
        __tablename__ = f"otelperf_author_{suffix}"
        id = Column(Integer, primary_key=True)
        books = relationship("Book", back_populates="author")

    class Book(Base):
        __tablename__ = f"otelperf_book_{suffix}"
        id = Column(Integer, primary_key=True)
        author_id = Column(ForeignKey(f"otelperf_author_{suffix}.id"), nullable=False)
        author = relationship("Author", back_populates="books")

    return Base, Author, Book


def _next_line() -> int:
    import sys

    return sys._getframe(1).f_lineno + 1


def test_psycopg_lazy_loads_are_told_the_relationship_and_the_exact_fix(postgres_url: str) -> None:
    import os

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from otelperf.testing import capture, stop_capture

    suffix = uuid.uuid4().hex[:12]
    base, author_cls, book_cls = _library(suffix)
    engine = sqlalchemy.create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"))
    base.metadata.create_all(engine)
    cap = capture(detectors="n_plus_one", n_plus_one_min_ms=0)
    try:
        with Session(engine) as session:
            session.add_all(author_cls(id=i, books=[book_cls(id=i)]) for i in range(6))
            session.commit()
        tracer = cap.runtime.tracer
        assert tracer is not None
        cap.clear()
        with tracer.start_as_current_span("GET /authors"), Session(engine) as session:
            parents_line = _next_line()
            authors = session.scalars(select(author_cls).order_by(author_cls.id)).all()
            for author in authors:
                loop_line = _next_line()
                assert len(author.books) == 1
        (finding,) = [f for f in cap.findings if f.detector == "n_plus_one"]
        here = os.path.relpath(__file__)
        function = "test_psycopg_lazy_loads_are_told_the_relationship_and_the_exact_fix"
        assert finding.details["relationship"] == "Author.books"
        assert finding.details["parent_statement"].startswith(f"SELECT otelperf_author_{suffix}.id FROM")
        assert finding.hint == (
            f"add {OPTION} to the query at {here}:{parents_line} in {function}():"
            f" Author.books is lazily loaded 6 times at {here}:{loop_line} in {function}()"
        )
        lazy = [s for s in _pg_spans(cap) if _attrs(s).get("otelperf.orm.relationship") == "Author.books"]
        assert len(lazy) == 6
        assert {_attrs(s)["code.line.number"] for s in lazy} == {loop_line}
        assert all(_attrs(s)["otelperf.orm.parent_table"] == f"otelperf_author_{suffix}" for s in lazy)
    finally:
        stop_capture(cap)
        base.metadata.drop_all(engine)
        engine.dispose()


async def test_asyncpg_awaitable_attrs_lazy_loads_name_the_awaiting_line(postgres_url: str) -> None:
    import os

    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncSession

    from otelperf.testing import capture, stop_capture

    suffix = uuid.uuid4().hex[:12]
    base, author_cls, book_cls = _library(suffix)
    engine = create_async_engine(make_url(postgres_url).set(drivername="postgresql+asyncpg"))
    async with engine.begin() as conn:
        await conn.run_sync(base.metadata.create_all)
    cap = capture(detectors="n_plus_one", n_plus_one_min_ms=0)
    try:
        async with AsyncSession(engine) as session:
            session.add_all(author_cls(id=i, books=[book_cls(id=i)]) for i in range(6))
            await session.commit()
        tracer = cap.runtime.tracer
        assert tracer is not None
        cap.clear()
        async with AsyncSession(engine) as session:
            with tracer.start_as_current_span("GET /authors"):
                parents_line = _next_line()
                authors = (await session.scalars(select(author_cls))).all()
                for author in authors:
                    loop_line = _next_line()
                    assert len(await author.awaitable_attrs.books) == 1
        (finding,) = [f for f in cap.findings if f.detector == "n_plus_one"]
        here = os.path.relpath(__file__)
        function = "test_asyncpg_awaitable_attrs_lazy_loads_name_the_awaiting_line"
        assert finding.details["relationship"] == "Author.books"
        assert finding.details["call_site"] == f"{here}:{loop_line} in {function}()"
        assert finding.details["parent_call_site"] == f"{here}:{parents_line} in {function}()"
        assert finding.hint.startswith(f"add {OPTION} to the query at {here}:{parents_line} in {function}()")
    finally:
        stop_capture(cap)
        async with engine.begin() as conn:
            await conn.run_sync(base.metadata.drop_all)
        await engine.dispose()
