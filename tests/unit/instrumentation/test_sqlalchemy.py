"""CLIENT spans and the duration metric for SQLAlchemy, against real SQLite (sync and aiosqlite)."""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select, text
from sqlalchemy.dialects.mssql.pyodbc import MSDialect_pyodbc
from sqlalchemy.dialects.mysql.mysqldb import MySQLDialect_mysqldb
from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql
from sqlalchemy.dialects.oracle.cx_oracle import OracleDialect_cx_oracle
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.engine import Engine
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from otelperf.instrumentation.sqlalchemy import _METHODS, _OVERRIDES, INSTRUMENTOR
from otelperf.testing import Capture, capture, stop_capture

SECRET = "hunter2-canary"
metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50)),
)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(20))


def _db_spans(cap: Capture) -> list[ReadableSpan]:
    return [s for s in cap.spans if (s.attributes or {}).get("db.system.name") == "sqlite"]


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _call_site(function: str, line: int) -> dict[str, object]:
    """The code.* attributes of a statement run from this file."""
    return {"code.file.path": __file__, "code.function.name": function, "code.line.number": line}


def _next_line() -> int:
    return sys._getframe(1).f_lineno + 1


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "app.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    eng = create_engine(f"sqlite:///{db_path}")
    metadata.create_all(eng)
    yield eng
    eng.dispose()


def test_select_makes_one_client_span_with_semconv_attributes(
    otelperf_capture: Capture, engine: Engine, db_path: Path
) -> None:
    otelperf_capture.clear()
    with engine.connect() as conn:
        line = _next_line()
        conn.execute(select(users.c.id, users.c.name).where(users.c.id == 7)).all()
    [span] = _db_spans(otelperf_capture)
    assert span.name == "SELECT users"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    query = "SELECT users.id, users.name FROM users WHERE users.id = ?"
    assert _attrs(span) == {
        "db.system.name": "sqlite",
        "db.namespace": str(db_path),
        "db.query.text": query,
        "db.operation.name": "SELECT",
        "db.collection.name": "users",
        "otelperf.component": "db",
        **_call_site("test_select_makes_one_client_span_with_semconv_attributes", line),
    }


def test_legacy_attribute_names_on_request(engine: Engine, db_path: Path) -> None:
    """OTEL_SEMCONV_STABILITY_OPT_IN=database/dup (or legacy_attributes=True) adds the old names."""
    from otelperf.testing import capture, stop_capture

    cap = capture(legacy_attributes=True)
    try:
        with engine.connect() as conn:
            conn.execute(select(users.c.id).where(users.c.id == 7)).all()
        [span] = _db_spans(cap)
        attrs = _attrs(span)
        assert attrs["db.system"] == attrs["db.system.name"] == "sqlite"
        assert (
            attrs["db.statement"] == attrs["db.query.text"] == "SELECT users.id FROM users WHERE users.id = ?"
        )
    finally:
        stop_capture(cap)


def test_statement_span_is_child_of_the_current_span(otelperf_capture: Capture, engine: Engine) -> None:
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with tracer.start_as_current_span("handler") as parent, engine.begin() as conn:
        conn.execute(insert(users).values(name="a"))
        conn.execute(select(users)).all()
    children = otelperf_capture.children_of(otelperf_capture.spans_named("handler")[0])
    assert [s.name for s in children] == ["INSERT users", "SELECT users"]
    for child in children:
        assert child.context.trace_id == parent.get_span_context().trace_id


@pytest.mark.fast_paths  # shares one attributes mapping: the leaf path
def test_a_statements_spans_share_one_attributes_mapping_and_an_error_gets_its_own(
    otelperf_capture: Capture, engine: Engine
) -> None:
    """Repeats of a statement hand the same (never changed) attributes to their spans, which the
    exporter then encodes once; a failing run of that statement adds error.type to a copy only."""
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    query = text("SELECT name FROM users WHERE id = :id")
    with tracer.start_as_current_span("handler"), engine.connect() as conn:
        for i in range(3):
            conn.execute(query, {"id": i}).all()
        conn.execute(text("DROP TABLE users"))
        with pytest.raises(sqlalchemy.exc.OperationalError):
            failing_line = _next_line()
            conn.execute(query, {"id": 9})
    spans = otelperf_capture.spans_named("SELECT users")
    assert len(spans) == 4
    first, second, third, failed = spans
    assert first._attributes is second._attributes is third._attributes  # shared, read-only to processors
    assert failed._attributes is not first._attributes
    assert _attrs(failed) == {
        **_attrs(first),
        "error.type": "sqlite3.OperationalError",
        "code.line.number": failing_line,  # the failing statement's own line
    }
    assert "error.type" not in _attrs(first)
    assert _attrs(first)["db.query.text"] == "SELECT name FROM users WHERE id = ?"


def test_executemany_is_one_span(otelperf_capture: Capture, engine: Engine) -> None:
    otelperf_capture.clear()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (name) VALUES (:name)"), [{"name": f"u{i}"} for i in range(50)])
    [span] = _db_spans(otelperf_capture)
    assert span.name == "INSERT users"
    assert _attrs(span)["db.query.text"] == "INSERT INTO users (name) VALUES (?)"


def test_literals_in_text_sql_never_reach_attributes(otelperf_capture: Capture, engine: Engine) -> None:
    otelperf_capture.clear()
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO users (id, name) VALUES (4242, '{SECRET}') -- by {SECRET}"))
        row = conn.execute(text(f"SELECT name FROM users WHERE name = '{SECRET}' AND id = 4242")).one()
    assert row.name == SECRET  # the query really ran with the literal
    spans = _db_spans(otelperf_capture)
    assert [_attrs(s)["db.query.text"] for s in spans] == [
        "INSERT INTO users (id, name) VALUES (?, ?)",
        "SELECT name FROM users WHERE name = ? AND id = ?",
    ]
    for span in spans:
        for value in _attrs(span).values():
            assert SECRET not in str(value) and "4242" not in str(value)
        assert SECRET not in span.name


def test_bound_parameters_are_never_recorded(otelperf_capture: Capture, engine: Engine) -> None:
    otelperf_capture.clear()
    with engine.begin() as conn:
        conn.execute(text("SELECT * FROM users WHERE name = :name"), {"name": SECRET})
    [span] = _db_spans(otelperf_capture)
    assert _attrs(span)["db.query.text"] == "SELECT * FROM users WHERE name = ?"
    assert all(SECRET not in str(v) for v in _attrs(span).values())


def test_error_ends_span_with_error_and_the_app_gets_sqlalchemys_exception(
    otelperf_capture: Capture, engine: Engine
) -> None:
    otelperf_capture.clear()
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    with (
        pytest.raises(sqlalchemy.exc.OperationalError) as caught,
        tracer.start_as_current_span("parent"),
        engine.connect() as conn,
    ):
        conn.execute(text(f"SELECT * FROM no_such_table WHERE secret = '{SECRET}'"))
    assert "no_such_table" in str(caught.value)  # the exception is SQLAlchemy's own, unchanged
    assert type(caught.value.orig).__name__ == "OperationalError"
    [span] = otelperf_capture.spans_named("SELECT no_such_table")
    assert span.end_time is not None
    assert span.parent is not None
    assert span.status.status_code is StatusCode.ERROR
    assert not span.status.description  # error messages can quote the statement's values
    assert _attrs(span)["error.type"] == "sqlite3.OperationalError"
    [event] = span.events
    assert event.name == "exception"
    assert dict(event.attributes or {}) == {"exception.type": "sqlite3.OperationalError"}
    assert _attrs(span)["db.query.text"] == "SELECT * FROM no_such_table WHERE secret = ?"


class _OpenSpans(SpanProcessor):
    """Counts spans started and not (yet) ended: an unended span is never exported, so only a
    processor can see it."""

    def __init__(self) -> None:
        self.open: set[int] = set()

    def on_start(self, span: Span, parent_context: object = None) -> None:
        self.open.add(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        self.open.discard(span.context.span_id)


@pytest.mark.parametrize(
    ("event_name", "statuses"),
    [
        # Raised before the DBAPI call: the statement never ran, and gets no span.
        ("before_cursor_execute", []),
        # Raised after the DBAPI call: the statement ran, and its span ended as a success.
        ("after_cursor_execute", [StatusCode.UNSET]),
    ],
)
@pytest.mark.parametrize("on_instance", [False, True])
def test_other_librarys_failing_listener_leaves_no_open_span(
    otelperf_capture: Capture, engine: Engine, event_name: str, statuses: list[StatusCode], on_instance: bool
) -> None:
    # Either way the app gets the other library's exception unchanged, and no span stays open.
    class ListenerFailed(Exception):
        pass

    def failing_listener(*args: object) -> None:
        raise ListenerFailed("boom")

    provider = otelperf_capture.runtime.tracer_provider
    assert provider is not None
    open_spans = _OpenSpans()
    provider.add_span_processor(open_spans)
    target = engine if on_instance else Engine
    sqlalchemy.event.listen(target, event_name, failing_listener)
    otelperf_capture.clear()
    try:
        with pytest.raises(ListenerFailed), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        sqlalchemy.event.remove(target, event_name, failing_listener)
    assert open_spans.open == set()
    assert [s.status.status_code for s in _db_spans(otelperf_capture)] == statuses
    otelperf_capture.clear()
    with engine.connect() as conn:  # and the next statement is traced normally
        conn.execute(text("SELECT 2"))
    assert [s.status.status_code for s in _db_spans(otelperf_capture)] == [StatusCode.UNSET]
    assert open_spans.open == set()


def test_duration_metric_points(otelperf_capture: Capture, engine: Engine, db_path: Path) -> None:
    with engine.connect() as conn:
        conn.execute(select(users)).all()
        conn.execute(select(users)).all()
        with pytest.raises(sqlalchemy.exc.OperationalError):
            conn.execute(text("SELEC broken"))
    namespace = ("db.namespace", str(db_path))
    points = {
        tuple(sorted(p.attributes.items())): p
        for p in otelperf_capture.metric_points("db.client.operation.duration")
    }
    ok = points[(namespace, ("db.operation.name", "SELECT"), ("db.system.name", "sqlite"))]
    assert ok.count == 2
    assert ok.sum > 0
    assert ok.explicit_bounds[:3] == (0.005, 0.01, 0.025)
    # "SELEC" is no verb: no operation name, and the failure is labelled with its type
    failed = points[(namespace, ("db.system.name", "sqlite"), ("error.type", "sqlite3.OperationalError"))]
    assert failed.count == 1


def test_engine_created_before_and_after_start_and_several_engines(tmp_path: Path) -> None:
    early = create_engine(f"sqlite:///{tmp_path / 'early.db'}")
    with early.connect() as conn:  # used before otelperf starts: no span, nothing to end later
        conn.execute(text("SELECT 1"))
    cap = capture()
    try:
        late = create_engine(f"sqlite:///{tmp_path / 'late.db'}")
        with early.connect() as conn:
            conn.execute(text("SELECT 1"))
        with late.connect() as conn:
            conn.execute(text("SELECT 2"))
        memory = create_engine("sqlite://")
        with memory.connect() as conn:
            conn.execute(text("SELECT 3"))
        namespaces = [_attrs(s).get("db.namespace") for s in _db_spans(cap)]
        assert namespaces == [str(tmp_path / "early.db"), str(tmp_path / "late.db"), None]
        late.dispose()
        memory.dispose()
    finally:
        stop_capture(cap)
        early.dispose()


def test_uninstrument_stops_spans_and_restores_sqlalchemy(engine: Engine) -> None:
    originals: dict[tuple[type, str], Any] = {
        (DefaultDialect, name): DefaultDialect.__dict__[name] for name in _METHODS
    }
    originals[PGDialect_psycopg2, "do_executemany"] = PGDialect_psycopg2.__dict__["do_executemany"]
    assert not any(hasattr(fn, "__wrapped__") for fn in originals.values())  # otelperf is not running
    cap = capture()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert len(_db_spans(cap)) == 1
        for (cls, name), original in originals.items():
            patched = cls.__dict__[name]
            assert patched is not original and patched.__wrapped__ is original
        INSTRUMENTOR.uninstrument()
        INSTRUMENTOR.uninstrument()  # idempotent
        for (cls, name), original in originals.items():
            assert cls.__dict__[name] is original
        cap.clear()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert _db_spans(cap) == []
    finally:
        stop_capture(cap)
    # and a fresh start instruments again, once: one wrapper around the original, one span
    cap = capture()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert len(_db_spans(cap)) == 1
        for (cls, name), original in originals.items():
            assert cls.__dict__[name].__wrapped__ is original
    finally:
        stop_capture(cap)
    for (cls, name), original in originals.items():
        assert cls.__dict__[name] is original


# Run in a fresh interpreter: the dialect modules below must not be imported yet.
_LAZY_IMPORT_SCRIPT = """
import sys
import sqlalchemy
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.engine import Connection, Engine
from otelperf.config import Settings
from otelperf.instrumentation._base import InstrumentContext
from otelperf.instrumentation.sqlalchemy import INSTRUMENTOR

assert not any(name in sys.modules for name in (
    "sqlalchemy.dialects.postgresql.psycopg2", "sqlalchemy.dialects.mysql.mysqldb",
    "sqlalchemy.dialects.oracle.cx_oracle"))
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
ctx = InstrumentContext(provider.get_tracer("t"), MeterProvider().get_meter("t"), Settings())
INSTRUMENTOR.instrument(ctx)
engine = sqlalchemy.create_engine("sqlite://")
with engine.connect() as conn:
    conn.execute(sqlalchemy.text("SELECT 1"))
assert [s.name for s in exporter.get_finished_spans()] == ["SELECT"]
# No event listener anywhere, so SQLAlchemy stays on its paths without event dispatch.
assert not (Engine._has_events or Connection._has_events or engine._has_events or engine.dialect._has_events)

from sqlalchemy.dialects.mysql.mysqldb import MySQLDialect_mysqldb
from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.dialects.postgresql.psycopg2cffi import PGDialect_psycopg2cffi

def own(cls):
    return cls.__dict__["do_executemany"]

def ours(fn):
    return fn.__code__.co_filename.endswith("otelperf/instrumentation/sqlalchemy.py")

originals = {}
pairs = ((PGDialect_psycopg2, PGDialect_psycopg2cffi), (MySQLDialect_mysqldb, MySQLDialect_pymysql))
for cls, subclass in pairs:
    assert ours(own(cls)), cls  # patched by the import hook
    originals[cls] = own(cls).__wrapped__
    assert originals[cls].__code__.co_filename == sys.modules[cls.__module__].__file__
    # the subclass inherits the one wrapper: one span per executemany, not two
    assert "do_executemany" not in subclass.__dict__ and subclass.do_executemany is own(cls)

INSTRUMENTOR.uninstrument()
for cls, original in originals.items():
    assert own(cls) is original
from sqlalchemy.dialects.oracle.cx_oracle import OracleDialect_cx_oracle  # its hook is pending: a no-op now
cx_oracle_original = own(OracleDialect_cx_oracle)
assert not ours(cx_oracle_original)

INSTRUMENTOR.instrument(ctx)  # the modules are imported now: patched at once, once
for cls, original in [*originals.items(), (OracleDialect_cx_oracle, cx_oracle_original)]:
    assert ours(own(cls)) and own(cls).__wrapped__ is original
INSTRUMENTOR.uninstrument()
for cls, original in [*originals.items(), (OracleDialect_cx_oracle, cx_oracle_original)]:
    assert own(cls) is original
print("ok")
"""


def test_lazily_imported_dialects_are_patched_once_and_restored() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _LAZY_IMPORT_SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def _builtin_dialect_classes() -> set[type]:
    import sqlalchemy.dialects

    for package in ("postgresql", "mysql", "sqlite", "oracle", "mssql"):
        module = importlib.import_module(f"sqlalchemy.dialects.{package}")
        for info in pkgutil.iter_modules(module.__path__):
            importlib.import_module(f"{module.__name__}.{info.name}")
    found: set[type] = set()
    todo = [DefaultDialect]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found and sub.__module__.startswith(sqlalchemy.dialects.__name__ + "."):
                found.add(sub)
                todo.append(sub)
    return found


def test_override_table_lists_every_builtin_dialect_that_replaces_the_dbapi_call() -> None:
    """Fails when a SQLAlchemy version adds a dialect whose statements would get no span."""
    overriding = {
        (cls.__module__, cls.__name__, name)
        for cls in _builtin_dialect_classes()
        for name in _METHODS
        if name in cls.__dict__
    }
    listed = {(module, cls, name) for module, (cls, names) in _OVERRIDES.items() for name in names}
    # mssql+pyodbc overrides do_executemany but calls DefaultDialect's (one span: tested below).
    assert overriding == listed | {("sqlalchemy.dialects.mssql.pyodbc", "MSDialect_pyodbc", "do_executemany")}


@pytest.mark.parametrize(
    ("dialect_class", "kwargs", "system"),
    [
        (PGDialect_psycopg2, {"executemany_mode": "values_only"}, "postgresql"),
        (MySQLDialect_mysqldb, {}, "mysql"),
        (MySQLDialect_pymysql, {}, "mysql"),
        (OracleDialect_cx_oracle, {}, "oracle.db"),
        (MSDialect_pyodbc, {}, "microsoft.sql_server"),
    ],
)
def test_each_dialects_own_executemany_is_one_span(
    otelperf_capture: Capture, dialect_class: type[DefaultDialect], kwargs: dict[str, Any], system: str
) -> None:
    # The dialects' own do_executemany run for real, on a DBAPI cursor that needs no server
    # (sqlite3). Called directly, outside any execution: no engine, so no URL attributes.
    dialect: Any = dialect_class(**kwargs)
    cursor = sqlite3.connect(":memory:").cursor()
    cursor.execute("CREATE TABLE t (x INTEGER)")
    otelperf_capture.clear()
    line = _next_line()
    dialect.do_executemany(cursor, "INSERT INTO t (x) VALUES (?)", [(1,), (2,)], None)
    assert cursor.execute("SELECT count(*) FROM t").fetchone() == (2,)
    [span] = otelperf_capture.spans
    assert span.name == "INSERT t"
    assert _attrs(span) == {
        "db.system.name": system,
        "db.query.text": "INSERT INTO t (x) VALUES (?)",
        "db.operation.name": "INSERT",
        "db.collection.name": "t",
        "otelperf.component": "db",
        **_call_site("test_each_dialects_own_executemany_is_one_span", line),
    }


class DriverError(Exception):
    pass


class _FailingCursor:
    """A DBAPI cursor whose execute raises the given exception object."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def execute(self, statement: str, parameters: object = None) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        (DriverError("message quoting a value"), f"{__name__}.DriverError"),
        # An async query cancelled while the driver awaits: BaseException, same span and exception.
        (asyncio.CancelledError(), "asyncio.exceptions.CancelledError"),
    ],
)
def test_the_apps_exception_passes_through_as_the_same_object(
    otelperf_capture: Capture, error: BaseException, error_type: str
) -> None:
    dialect: Any = create_engine("sqlite://").dialect  # typed for DBAPI cursors, given a stand-in
    otelperf_capture.clear()
    with pytest.raises(type(error)) as caught:
        dialect.do_execute(_FailingCursor(error), "SELECT x FROM t", (), None)
    assert caught.value is error
    assert error.__cause__ is None and error.__context__ is None
    with pytest.raises(type(error)) as caught:
        dialect.do_execute_no_params(_FailingCursor(error), "SELECT 1", None)
    assert caught.value is error
    spans = otelperf_capture.spans
    assert [s.name for s in spans] == ["SELECT t", "SELECT"]
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR
        assert _attrs(span)["error.type"] == error_type
        assert [dict(e.attributes or {}) for e in span.events] == [{"exception.type": error_type}]


def test_skip_user_error_events_statements_make_no_span(otelperf_capture: Capture, engine: Engine) -> None:
    """SQLAlchemy's option for dialect-internal probes whose failures are expected (MySQL's)."""
    otelperf_capture.clear()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1").execution_options(skip_user_error_events=True))
        conn.execute(text("SELECT 2"))
    assert [_attrs(s)["db.query.text"] for s in _db_spans(otelperf_capture)] == ["SELECT ?"]


def test_suppressed_instrumentation_makes_no_span(otelperf_capture: Capture, engine: Engine) -> None:
    from opentelemetry import context as otel_context
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

    otelperf_capture.clear()
    token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        otel_context.detach(token)
    with engine.connect() as conn:
        conn.execute(text("SELECT 2"))
    assert [_attrs(s)["db.query.text"] for s in _db_spans(otelperf_capture)] == ["SELECT ?"]
    assert len(_db_spans(otelperf_capture)) == 1


def test_unsampled_statement_records_metric_but_no_attributes(engine: Engine) -> None:
    cap = capture(sampler="always_off")
    try:
        with engine.connect() as conn:
            conn.execute(select(users)).all()
        assert cap.spans == []
        [point] = cap.metric_points("db.client.operation.duration")
        assert point.attributes["db.operation.name"] == "SELECT"
    finally:
        stop_capture(cap)


def test_orm_session_flush_and_query(otelperf_capture: Capture, engine: Engine) -> None:
    Base.metadata.create_all(engine)
    otelperf_capture.clear()
    with Session(engine) as session:
        session.add_all([Item(label=f"l{i}") for i in range(3)])
        session.commit()
        assert session.scalars(select(Item).where(Item.label == "l1")).one().id == 2
    names = [s.name for s in _db_spans(otelperf_capture)]
    assert names[-1] == "SELECT items"
    assert "INSERT items" in names
    assert all(s.status.status_code is StatusCode.UNSET for s in _db_spans(otelperf_capture))


async def test_async_engine_spans_are_children_of_the_awaiting_span(
    otelperf_capture: Capture, tmp_path: Path
) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'async.db'}")
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        otelperf_capture.clear()
        with tracer.start_as_current_span("request"):
            async with engine.begin() as conn:
                await conn.execute(insert(users).values(name=SECRET))
                rows = (await conn.execute(select(users.c.name))).all()
        assert rows == [(SECRET,)]
        with pytest.raises(sqlalchemy.exc.OperationalError):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT * FROM missing"))
    finally:
        await engine.dispose()
    [request] = otelperf_capture.spans_named("request")
    children = otelperf_capture.children_of(request)
    assert [s.name for s in children] == ["INSERT users", "SELECT users"]
    assert all(s.kind is SpanKind.CLIENT for s in children)
    assert _attrs(children[0])["db.query.text"] == "INSERT INTO users (name) VALUES (?)"
    [failed] = otelperf_capture.spans_named("SELECT missing")
    assert failed.parent is None  # no span was current: a root span, not a child of "request"
    assert failed.status.status_code is StatusCode.ERROR


async def test_async_concurrent_queries_each_parent_to_their_own_task_span(
    otelperf_capture: Capture, tmp_path: Path
) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'conc.db'}")
    tracer = otelperf_capture.runtime.tracer
    assert tracer is not None

    async def task(label: str) -> None:
        with tracer.start_as_current_span(label):
            async with engine.connect() as conn:
                await conn.execute(text(f"SELECT '{label}' AS {label}"))
                await asyncio.sleep(0)
                await conn.execute(text("SELECT 2"))

    try:
        await asyncio.gather(task("first"), task("second"))
    finally:
        await engine.dispose()
    for label in ("first", "second"):
        [parent] = otelperf_capture.spans_named(label)
        assert [_attrs(s)["db.query.text"] for s in otelperf_capture.children_of(parent)] == [
            f"SELECT ? AS {label}",
            "SELECT ?",
        ]
