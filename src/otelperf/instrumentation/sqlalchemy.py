"""SQLAlchemy instrumentation (2.0 and 2.1, sync and asyncio): one CLIENT span per statement.

Listeners are registered with ``sqlalchemy.event`` on the ``Engine`` *class*, so every engine is
covered: created before or after ``otelperf.init()``, several of them, and the sync engine inside
every ``AsyncEngine``. ``uninstrument`` removes exactly those listeners.

- ``before_cursor_execute`` notes the start time and the current context (the parent). Under
  asyncio the statement runs in a greenlet to which SQLAlchemy hands the caller's ``contextvars``
  context, so a query awaited inside a request span is that span's child there too.
- ``after_cursor_execute`` creates the span with that start time and parent, ends it, and records
  ``db.client.operation.duration``.
- ``handle_error`` does the same with status ERROR and ``error.type`` when the DBAPI call (or
  another listener) fails; the application's exception is never replaced or changed.

The span is created only when the statement is over, so no span is ever left open: SQLAlchemy 2.0
runs the ``before_cursor_execute`` listeners outside its error handling, and when a listener
after ours raises there, neither of the closing events comes (the statement never ran, and gets
no span). What waits between the events sits on the ``ExecutionContext`` and dies with it.

One span per DBAPI round trip: ``executemany`` is one span; an "insertmanyvalues" bulk INSERT
is one span per batch SQLAlchemy sends. Connection-pool connects and checkouts get no span on
purpose (they are cheap when the pool is warm and would double the span count of every request);
their cost shows up as the gap before the first statement.

``db.query.text`` (and the legacy ``db.statement``) is the statement with every literal replaced
by ``?`` (:func:`otelperf._sql.sanitize`), so values inlined into ``text()`` SQL never leave the
process; parameters are never read. Errors carry the exception's type only: database error
messages often quote the parameters.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context, get_current
from opentelemetry.metrics import Histogram
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from otelperf import _internal, _names
from otelperf._sql import operation_and_collection, sanitize
from otelperf.instrumentation._base import InstrumentContext, Instrumentor
from otelperf.instrumentation.cache import instrumentation_suppressed

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine, ExceptionContext, ExecutionContext

__all__ = ["INSTRUMENTOR", "SQLAlchemyInstrumentor", "system_names"]

# SQLAlchemy dialect name -> (db.system.name, legacy db.system). Others report the dialect name.
_SYSTEMS: dict[str, tuple[str, str]] = {
    "postgresql": ("postgresql", "postgresql"),
    "sqlite": ("sqlite", "sqlite"),
    "mysql": ("mysql", "mysql"),
    "mariadb": ("mariadb", "mariadb"),
    "oracle": ("oracle.db", "oracle"),
    "mssql": ("microsoft.sql_server", "mssql"),
}
_MYSQL_LEXING = frozenset(("mysql", "mariadb"))

# Where the pending span of a statement waits between the events: an attribute of SQLAlchemy's
# ExecutionContext, which lives exactly as long as one execution.
_SLOT = "_otelperf_pending"


def system_names(dialect: Any) -> tuple[str, str]:
    """(``db.system.name``, legacy ``db.system``) for a SQLAlchemy dialect."""
    name = str(getattr(dialect, "name", "") or "other_sql")
    if name == "mysql" and getattr(dialect, "is_mariadb", False):
        name = "mariadb"
    return _SYSTEMS.get(name, (name, name))


class _EngineInfo:
    """What is the same for every statement of one engine, worked out once."""

    __slots__ = ("metric_attributes", "mysql", "span_attributes", "system_name")

    def __init__(self, engine: Engine) -> None:
        system_name, legacy = system_names(engine.dialect)
        self.system_name = system_name
        self.mysql = engine.dialect.name in _MYSQL_LEXING
        url = engine.url  # only database, host and port: never username or password
        span: dict[str, Any] = {
            _names.DB_SYSTEM_NAME: system_name,
            _names.DB_SYSTEM_LEGACY: legacy,
            _names.COMPONENT: _names.COMPONENT_DB,
        }
        metric: dict[str, Any] = {_names.DB_SYSTEM_NAME: system_name}
        if url.database:
            span[_names.DB_NAMESPACE] = metric[_names.DB_NAMESPACE] = url.database
        if url.host:
            span[_names.SERVER_ADDRESS] = url.host
            if url.port is not None:
                span[_names.SERVER_PORT] = int(url.port)
        self.span_attributes = span
        self.metric_attributes = metric


class _Pending:
    """One statement execution between ``before_cursor_execute`` and its end."""

    __slots__ = ("collection", "info", "operation", "parent", "start", "start_ns", "statement")

    def __init__(
        self,
        statement: str,
        info: _EngineInfo,
        operation: str | None,
        collection: str | None,
        parent: Context,
    ) -> None:
        self.statement = statement
        self.info = info
        self.operation = operation
        self.collection = collection
        self.parent = parent
        self.start_ns = time.time_ns()
        self.start = time.perf_counter()


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _driver_exception(exc: BaseException) -> BaseException:
    """The driver's own exception behind SQLAlchemy's DBAPI adapters (asyncpg, psycopg async...).

    The asyncio dialects wrap driver errors in adapter classes named after PEP 249 (an asyncpg
    ``UndefinedColumnError`` arrives as ``AsyncAdapt_asyncpg_dbapi.ProgrammingError``, raised
    ``from`` the original): the driver's class names the failure better.
    """
    cause = exc.__cause__
    if cause is not None and type(exc).__module__.startswith("sqlalchemy."):
        return cause
    return exc


def _report_internal_error(where: str, exc: Exception) -> None:
    """What ``_internal.guard`` does, without a context manager on the per-statement path."""
    _internal.record_internal_error(where, exc)
    if _internal._under_pytest():
        raise exc


class SQLAlchemyInstrumentor(Instrumentor):
    """Traces every statement of every SQLAlchemy engine through class-level engine events."""

    name = "sqlalchemy"

    def __init__(self) -> None:
        self._listeners: list[tuple[str, Callable[..., Any]]] = []

    def instrument(self, ctx: InstrumentContext) -> None:
        if self._listeners:
            return
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        listeners = _make_listeners(
            ctx.tracer,
            ctx.meter.create_histogram(
                _names.METRIC_DB_CLIENT_DURATION,
                unit="s",
                description="Duration of database client operations.",
                explicit_bucket_boundaries_advisory=list(_names.DURATION_BUCKETS_S),
            ),
        )
        for identifier, fn in listeners:
            event.listen(Engine, identifier, fn)
            self._listeners.append((identifier, fn))

    def uninstrument(self) -> None:
        if not self._listeners:
            return
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        while self._listeners:
            identifier, fn = self._listeners.pop()
            if event.contains(Engine, identifier, fn):
                event.remove(Engine, identifier, fn)


def _make_listeners(tracer: Tracer, duration: Histogram) -> list[tuple[str, Callable[..., Any]]]:
    """The three event listeners, as closures over the providers' tracer and histogram."""
    infos: weakref.WeakKeyDictionary[Engine, _EngineInfo] = weakref.WeakKeyDictionary()
    perf_counter = time.perf_counter

    def engine_info(engine: Engine) -> _EngineInfo:
        info = infos.get(engine)
        if info is None:
            info = infos[engine] = _EngineInfo(engine)
        return info

    def finish(pending: _Pending, error: BaseException | None) -> None:
        elapsed = perf_counter() - pending.start
        info, operation, collection = pending.info, pending.operation, pending.collection
        if operation is None:
            name = info.system_name
        elif collection is None:
            name = operation
        else:
            name = f"{operation} {collection}"
        span = tracer.start_span(
            name, context=pending.parent, kind=SpanKind.CLIENT, start_time=pending.start_ns
        )
        error_type = None if error is None else _type_name(error)
        if span.is_recording():
            attributes = dict(info.span_attributes)
            attributes[_names.DB_QUERY_TEXT] = attributes[_names.DB_STATEMENT_LEGACY] = sanitize(
                pending.statement, mysql=info.mysql
            )
            if operation is not None:
                attributes[_names.DB_OPERATION_NAME] = operation
            if collection is not None:
                attributes[_names.DB_COLLECTION_NAME] = collection
            if error_type is not None:
                attributes[_names.ERROR_TYPE] = error_type
                # SQLSTATE (psycopg, asyncpg): a code, not a message.
                sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
                if isinstance(sqlstate, str) and sqlstate:
                    attributes[_names.DB_RESPONSE_STATUS_CODE] = sqlstate
                # The type only, never the message or a traceback: both can quote parameters.
                span.add_event(_names.EXCEPTION_EVENT, {_names.EXCEPTION_TYPE: error_type})
                span.set_status(Status(StatusCode.ERROR))
            span.set_attributes(attributes)
        span.end()
        metric_attributes = dict(info.metric_attributes)
        if operation is not None:
            metric_attributes[_names.DB_OPERATION_NAME] = operation
        if error_type is not None:
            metric_attributes[_names.ERROR_TYPE] = error_type
        duration.record(elapsed, metric_attributes)

    def before_cursor_execute(  # noqa: PLR0917 - SQLAlchemy's signature
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        # Without an ExecutionContext there is nowhere to keep the start until the end. SQLAlchemy
        # passes none only for dialect-internal statements run outside any execution.
        if context is None:
            return
        try:
            if instrumentation_suppressed():
                return
            # Dialect-internal probes whose errors SQLAlchemy does not report to handle_error
            # (MySQL's): their failures would be reported as successes.
            if context.execution_options.get("skip_user_error_events"):
                return
            info = engine_info(conn.engine)
            operation, collection = operation_and_collection(statement, mysql=info.mysql)
            context.__dict__[_SLOT] = _Pending(statement, info, operation, collection, get_current())
        except Exception as exc:
            _report_internal_error("sqlalchemy.before_cursor_execute", exc)

    def after_cursor_execute(  # noqa: PLR0917 - SQLAlchemy's signature
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        if context is None:
            return
        try:
            pending = context.__dict__.pop(_SLOT, None)
            if pending is not None:
                finish(pending, None)
        except Exception as exc:
            _report_internal_error("sqlalchemy.after_cursor_execute", exc)

    def handle_error(exception_context: ExceptionContext) -> None:
        # Also fires for errors after after_cursor_execute (fetching rows): that statement's
        # span is already ended, and nothing happens. Returns None, so SQLAlchemy raises what it would anyway.
        try:
            context = exception_context.execution_context
            if context is None:
                return
            pending = context.__dict__.pop(_SLOT, None)
            if pending is not None:
                finish(pending, _driver_exception(exception_context.original_exception))
        except Exception as exc:
            _report_internal_error("sqlalchemy.handle_error", exc)

    return [
        ("before_cursor_execute", before_cursor_execute),
        ("after_cursor_execute", after_cursor_execute),
        ("handle_error", handle_error),
    ]


INSTRUMENTOR = SQLAlchemyInstrumentor()
