"""SQLAlchemy instrumentation (2.0 and 2.1, sync and asyncio): one CLIENT span per statement.

Every statement of every engine ends in one of three dialect methods that make the DBAPI call:
``DefaultDialect.do_execute``, ``do_execute_no_params`` and ``do_executemany``. Those are
patched on the class, plus the few built-in dialects that override one without calling it
(:data:`_OVERRIDES`), so every engine is covered: created before or after ``otelperf.init()``,
several of them, and the sync engine inside every ``AsyncEngine``. ``uninstrument`` puts the
original functions back.

Why not ``sqlalchemy.event``: one listener for ``before_cursor_execute`` (or its siblings) on the
``Engine`` class switches every connection to SQLAlchemy's event-dispatch paths, which cost
about as much per statement as everything otelperf does. The patched method is a plain function
that checks suppression, takes the start time, calls the original and builds the finished span
(``error.type`` and status ERROR when the call raises, and the application's exception is
re-raised as the same object). Under asyncio the statement runs in a greenlet to which
SQLAlchemy hands the caller's ``contextvars`` context, so a query awaited inside a request span
is that span's child there too.

One span per DBAPI round trip: ``executemany`` is one span; an "insertmanyvalues" bulk INSERT
is one span per batch SQLAlchemy sends. Connection-pool connects and checkouts get no span on
purpose (they are cheap when the pool is warm and would double the span count of every request),
and neither do the dialect's checks on an engine's first connect; their cost shows up as the gap
before the first statement. A ``do_execute`` dialect event handler that runs the statement itself
(returns True) bypasses the dialect method, and that statement gets no span.

``db.query.text`` (and the legacy ``db.statement``) is the statement with every literal replaced
by ``?`` (:func:`otelperf.redaction.sql.sanitize`), so values inlined into ``text()`` SQL never leave the
process; parameters are never read. Errors carry the exception's type only: database error
messages often quote the parameters.

Each statement's span carries its call site (``code.file.path``, ``code.line.number``,
``code.function.name``: :mod:`otelperf.instrumentation._callsite`) unless ``call_sites`` is off. An
ORM statement that loads a relationship for one parent (a lazy load, or a query written to do
the same) also carries the relationship (``otelperf.orm.relationship``: ``Author.books``), how it
was loaded and the table of the parent rows (:mod:`otelperf.instrumentation._sqlalchemy_orm`):
what the N+1 detector needs to name the exact fix.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import wrapt
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, Tracer

from otelperf import _names
from otelperf._runtime import guard as _internal
from otelperf._sdk import context as _context
from otelperf._sdk import span_context as _ctx
from otelperf._sdk.leaf import LeafSpans, parent_in
from otelperf._sdk.suppression import instrumentation_suppressed
from otelperf.instrumentation._base import InstrumentContext, Instrumentor
from otelperf.instrumentation._callsite import CallSites
from otelperf.instrumentation._sqlalchemy_orm import (
    is_orm,
    lazy_loaded,
    queried_relationship,
    relationship_attributes,
)
from otelperf.pipeline.fast_histograms import FastHistogram
from otelperf.redaction.sql import MAX_CACHED_LENGTH, operation_and_collection, sanitize

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

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

# The dialect methods that make the DBAPI call, as DefaultDialect defines them.
_BASE_MODULE = "sqlalchemy.engine.default"
_BASE_CLASS = "DefaultDialect"
_METHODS = ("do_execute", "do_execute_no_params", "do_executemany")

# Built-in dialects whose own method calls the DBAPI instead of DefaultDialect's, so it needs a
# patch of its own: module -> (class, methods). Checked for SQLAlchemy 2.0 and 2.1 (a unit test
# fails when a version adds an override). Their modules are imported when an engine of that
# driver is created, so the patch waits for that import. mssql+pyodbc's do_executemany is left
# alone on purpose: it calls DefaultDialect's, which already makes the span.
# Subclasses (pymysql, oracledb, psycopg2cffi...) inherit the patched function.
_OVERRIDES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sqlalchemy.dialects.postgresql.psycopg2": ("PGDialect_psycopg2", ("do_executemany",)),
    "sqlalchemy.dialects.mysql.mysqldb": ("MySQLDialect_mysqldb", ("do_executemany",)),
    "sqlalchemy.dialects.oracle.cx_oracle": ("OracleDialect_cx_oracle", ("do_executemany",)),
}

# What begin() hands to end(): (info, operation, collection, statement, parent, start_ns, start,
# (relationship, "lazy" | "query") when the statement loads one for one parent, else None).
_Pending = tuple[Any, str | None, str | None, str, Context, int, float, Any]
_Begin = Callable[[Any, str, Any], "_Pending | None"]
_End = Callable[["_Pending", "BaseException | None"], None]


_Series = tuple[dict[str, Any], frozenset[tuple[str, Any]]]  # attributes, their key
_MAX_SERIES_PER_ENGINE = 256
_MAX_STATEMENTS_PER_ENGINE = 512  # distinct statements whose span attributes are kept, per engine
_SAMPLED = 0x01  # the W3C "sampled" trace flag


def system_names(dialect: Any) -> tuple[str, str]:
    """(``db.system.name``, legacy ``db.system``) for a SQLAlchemy dialect."""
    name = str(getattr(dialect, "name", "") or "other_sql")
    if name == "mysql" and getattr(dialect, "is_mariadb", False):
        name = "mariadb"
    return _SYSTEMS.get(name, (name, name))


class _EngineInfo:
    """What is the same for every statement of one engine, worked out once."""

    __slots__ = (
        "legacy_attributes",
        "metric_attributes",
        "mysql",
        "queried",
        "relationships",
        "series",
        "sites",
        "span_attributes",
        "statements",
        "system_name",
    )

    def __init__(self, dialect: Any, url: URL | None, legacy_attributes: bool) -> None:
        system_name, legacy = system_names(dialect)
        self.system_name = system_name
        self.mysql = dialect.name in _MYSQL_LEXING
        self.legacy_attributes = legacy_attributes
        span: dict[str, Any] = {
            _names.DB_SYSTEM_NAME: system_name,
            _names.COMPONENT: _names.COMPONENT_DB,
        }
        if legacy_attributes:
            span[_names.DB_SYSTEM_LEGACY] = legacy
        if getattr(dialect, "is_async", False):
            # An AsyncEngine's statements are awaited: the sequential_awaits detector reads only
            # those. Known per engine, so it costs nothing per statement.
            span[_names.DB_ASYNC] = True
        metric: dict[str, Any] = {_names.DB_SYSTEM_NAME: system_name}
        # Only database, host and port of the URL: never username or password.
        if url is not None and url.database:
            span[_names.DB_NAMESPACE] = metric[_names.DB_NAMESPACE] = url.database
        if url is not None and url.host:
            span[_names.SERVER_ADDRESS] = url.host
            if url.port is not None:
                span[_names.SERVER_PORT] = int(url.port)
        self.span_attributes = span
        self.metric_attributes = metric
        # The duration histogram's attribute sets by (operation, error type), keyed once.
        self.series: dict[tuple[str | None, str | None], _Series] = {}
        # A statement's span attributes, built once and shared by its spans (never changed after:
        # span processors read them through a read-only view), keyed by the statement's text.
        self.statements: dict[str, dict[str, Any]] = {}
        # A statement's ORM attributes, by (relationship, load): (its statement's attributes, those
        # + the ORM's), and the relationship each explicit ORM SELECT loads (None: none).
        self.relationships: dict[tuple[Any, str], tuple[dict[str, Any], dict[str, Any]]] = {}
        self.queried: dict[str, Any] = {}
        self.sites = CallSites()  # where each statement was run from

    def relationship_attributes(self, attributes: dict[str, Any], loads: tuple[Any, str]) -> dict[str, Any]:
        """``attributes`` plus the relationship the statement loads: shared, never to be changed."""
        cached = self.relationships.get(loads)
        if cached is not None and cached[0] is attributes:
            return cached[1]
        merged = dict(attributes)
        merged.update(relationship_attributes(*loads))
        if len(self.relationships) >= _MAX_STATEMENTS_PER_ENGINE:
            self.relationships.clear()
        self.relationships[loads] = (attributes, merged)
        return merged

    def queried_relationship(self, statement: str, context: Any) -> Any:
        """The relationship an explicit ORM SELECT loads for one parent (worked out once per text)."""
        try:
            return self.queried[statement]
        except KeyError:
            pass
        relationship = queried_relationship(context)
        if len(statement) <= MAX_CACHED_LENGTH:
            if len(self.queried) >= _MAX_STATEMENTS_PER_ENGINE:
                self.queried.clear()
            self.queried[statement] = relationship
        return relationship

    def statement_attributes(
        self, statement: str, operation: str | None, collection: str | None
    ) -> dict[str, Any]:
        """The span attributes of a successful ``statement``: shared, never to be changed."""
        attributes = self.statements.get(statement)
        if attributes is None:
            attributes = dict(self.span_attributes)
            text = sanitize(statement, mysql=self.mysql)
            attributes[_names.DB_QUERY_TEXT] = text
            if self.legacy_attributes:
                attributes[_names.DB_STATEMENT_LEGACY] = text
            if operation is not None:
                attributes[_names.DB_OPERATION_NAME] = operation
            if collection is not None:
                attributes[_names.DB_COLLECTION_NAME] = collection
            if len(statement) <= MAX_CACHED_LENGTH:  # a huge statement is not kept alive as a key
                if len(self.statements) >= _MAX_STATEMENTS_PER_ENGINE:
                    self.statements.clear()
                self.statements[statement] = attributes
        return attributes


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


class SQLAlchemyInstrumentor(Instrumentor):
    """Traces every statement of every SQLAlchemy engine by patching the dialects' DBAPI calls."""

    name = "sqlalchemy"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The current (begin, end) pair; None when not instrumented. Import hooks check it, so a
        # hook still pending after uninstrument() does nothing.
        self._hooks: tuple[_Begin, _End] | None = None
        # (class, method name, original, wrapper), in patching order.
        self._patched: list[tuple[type, str, Any, Any]] = []
        self._import_hooks_registered: set[str] = set()
        self._explain = False  # whether engines are reported to detectors/explain.py

    def instrument(self, ctx: InstrumentContext) -> None:
        if self._hooks is not None:
            return
        from sqlalchemy.engine import default

        on_engine: Callable[[Any, URL], None] | None = None
        settings = ctx.settings
        if settings.explain and "slow_query" in settings.detectors:
            # EXPLAIN of slow SELECTs needs to reach each PostgreSQL engine's database on its own.
            from otelperf.detectors import explain

            on_engine, self._explain = explain.register_engine, True
        self._hooks = _make_hooks(
            ctx.tracer,
            ctx.settings.legacy_attributes,
            ctx.meter.create_histogram(
                _names.METRIC_DB_CLIENT_DURATION,
                unit="s",
                description="Duration of database client operations.",
                explicit_bucket_boundaries_advisory=list(_names.DURATION_BUCKETS_S),
            ),
            on_engine,
            call_sites=getattr(settings, "call_sites", True),
        )
        self._patch_class(getattr(default, _BASE_CLASS), _METHODS)
        for module_name in _OVERRIDES:
            module = sys.modules.get(module_name)
            if module is not None:
                self._on_import(module)
            elif module_name not in self._import_hooks_registered:
                # wrapt keeps a hook until the module is imported and offers no way to remove
                # it: register each once per process; it patches only while instrumented.
                self._import_hooks_registered.add(module_name)
                wrapt.register_post_import_hook(self._on_import, module_name)

    def uninstrument(self) -> None:
        with self._lock:
            self._hooks = None
            while self._patched:
                cls, name, original, wrapper = self._patched.pop()
                # Put the original back only if ours is still there: whoever patched on top of
                # us holds our wrapper, and removing theirs would break their uninstrument.
                if cls.__dict__.get(name) is wrapper:
                    setattr(cls, name, original)
            if self._explain:
                from otelperf.detectors import explain

                explain.clear_targets()  # no credentials kept once otelperf is gone
                self._explain = False

    def _on_import(self, module: Any) -> None:
        try:
            class_name, methods = _OVERRIDES[module.__name__]
            self._patch_class(getattr(module, class_name), methods)
        except Exception as exc:
            _internal.swallow("sqlalchemy.import_hook", exc)

    def _patch_class(self, cls: type, methods: tuple[str, ...]) -> None:
        with self._lock:
            hooks = self._hooks
            if hooks is None:
                return
            for name in methods:
                # Only a function the class defines itself: an inherited one is patched where it
                # is defined, and wrapping it again here would make two spans per statement.
                original = cls.__dict__.get(name)
                if original is None or any(c is cls and n == name for c, n, _, _ in self._patched):
                    continue
                wrapper = _wrap(original, name, *hooks)
                self._patched.append((cls, name, original, wrapper))
                setattr(cls, name, wrapper)


def _wrap(original: Callable[..., Any], name: str, begin: _Begin, end: _End) -> Callable[..., Any]:
    """A plain function in place of a dialect method: cheaper than a wrapt.FunctionWrapper."""
    wrapper: Callable[..., Any]
    if name == "do_execute_no_params":

        def do_execute_no_params(self: Any, cursor: Any, statement: str, context: Any = None) -> Any:
            pending = begin(self, statement, context)
            if pending is None:
                return original(self, cursor, statement, context)
            try:
                result = original(self, cursor, statement, context)
            except BaseException as exc:
                end(pending, exc)
                raise
            end(pending, None)
            return result

        wrapper = do_execute_no_params
    else:

        def do_execute(self: Any, cursor: Any, statement: str, parameters: Any, context: Any = None) -> Any:
            pending = begin(self, statement, context)
            if pending is None:
                return original(self, cursor, statement, parameters, context)
            try:
                result = original(self, cursor, statement, parameters, context)
            except BaseException as exc:
                end(pending, exc)
                raise
            end(pending, None)
            return result

        wrapper = do_execute
    return functools.wraps(original)(wrapper)


def _make_hooks(
    tracer: Tracer,
    legacy_attributes: bool,
    duration: Histogram,
    on_engine: Callable[[Any, URL], None] | None = None,
    *,
    call_sites: bool = True,
) -> tuple[_Begin, _End]:
    """What runs before and after each DBAPI call (see :class:`_StatementHooks`).

    ``on_engine(dialect, url)`` is called once per engine, at its first statement.
    """
    hooks = _StatementHooks(tracer, legacy_attributes, duration, on_engine, call_sites)
    return hooks.begin, hooks.end


class _StatementHooks:
    """Before a DBAPI call: what the statement is and when it started. After it: its span (a leaf
    span under a sampled parent, else through the tracer) and its duration point."""

    __slots__ = (
        "_call_sites",
        "_duration",
        "_fast_duration",
        "_infos",
        "_leaf",
        "_legacy",
        "_on_engine",
        "_tracer",
    )

    def __init__(
        self,
        tracer: Tracer,
        legacy_attributes: bool,
        duration: Histogram,
        on_engine: Callable[[Any, URL], None] | None,
        call_sites: bool = True,
    ) -> None:
        self._call_sites = call_sites
        self._tracer = tracer
        self._legacy = legacy_attributes
        self._duration = duration
        self._fast_duration = duration if isinstance(duration, FastHistogram) else None
        self._on_engine = on_engine
        self._infos: weakref.WeakKeyDictionary[Any, _EngineInfo] = weakref.WeakKeyDictionary()
        self._leaf = LeafSpans(tracer)

    def begin(self, dialect: Any, statement: str, context: Any) -> _Pending | None:
        try:
            if instrumentation_suppressed():
                return None
            if context is None:
                # A direct call outside any execution: the dialect is all there is, without a URL.
                key, url = dialect, None
            else:
                connection = context.root_connection
                # The dialect's own checks on an engine's first connect run on a connection made
                # for them alone, the only one that may not autobegin: part of connecting, no span.
                if not connection._allow_autobegin:
                    return None
                # Dialect-internal probes whose failures are expected and handled (MySQL's):
                # SQLAlchemy keeps them from error events, and otelperf from spans.
                if context.execution_options.get("skip_user_error_events"):
                    return None
                key = connection.engine
                url = key.url
            info = self._infos.get(key)
            if info is None:
                info = self._infos[key] = _EngineInfo(dialect, url, self._legacy)
                if self._on_engine is not None and url is not None:
                    self._on_engine(dialect, url)
            operation, collection = operation_and_collection(statement, mysql=info.mysql)
            loads: tuple[Any, str] | None = None
            if operation == "SELECT" and context is not None and is_orm(context):
                relationship = lazy_loaded(context)
                if relationship is not None:
                    loads = (relationship, "lazy")
                else:
                    relationship = info.queried_relationship(statement, context)
                    if relationship is not None:
                        loads = (relationship, "query")
            return (
                info,
                operation,
                collection,
                statement,
                _context.get_current(),
                time.time_ns(),
                time.perf_counter(),
                loads,
            )
        except Exception as exc:
            _internal.swallow("sqlalchemy.execute", exc)
            return None

    def end(self, pending: _Pending, error: BaseException | None) -> None:
        try:
            elapsed_end = time.perf_counter()
            parent, error_type = self._span(pending, error)
            self._record_duration(pending, error_type, elapsed_end, parent)
        except Exception as exc:
            _internal.swallow("sqlalchemy.execute", exc)

    def _span(self, pending: _Pending, raised: BaseException | None) -> tuple[SpanContext, str | None]:
        """Write the statement's span; returns its parent's context (the exemplar's) and the error type."""
        info, operation, collection, statement, parent_context, start_ns, _, loads = pending
        error = None if raised is None else _driver_exception(raised)
        if operation is None:
            name = info.system_name
        elif collection is None:
            name = operation
        else:
            name = f"{operation} {collection}"
        error_type = None if error is None else _type_name(error)
        parent = parent_in(parent_context)
        attributes: dict[str, Any] | None = None
        # Attributes go in at span start (one pass through the SDK's attribute checks), so they
        # are built before the span exists: skip them when the parent says "not sampled".
        valid_parent = _ctx.is_valid(parent)
        if not valid_parent or _ctx.trace_flags(parent) & _SAMPLED:
            attributes = info.statement_attributes(statement, operation, collection)
            if loads is not None:
                attributes = info.relationship_attributes(attributes, loads)
            if self._call_sites:
                # The stack here is the statement's: this runs inside the patched dialect method.
                attributes = info.sites.attributes(statement, attributes)
            if error is not None:
                attributes = dict(attributes)  # its own copy: the shared one stays as it is
                attributes[_names.ERROR_TYPE] = error_type
                # SQLSTATE (psycopg, asyncpg): a code, not a message.
                sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
                if isinstance(sqlstate, str) and sqlstate:
                    attributes[_names.DB_RESPONSE_STATUS_CODE] = sqlstate
        if attributes is not None and valid_parent and self._leaf.enabled:
            # The usual case, a statement inside a request: written as a finished span in one step.
            end_ns = time.time_ns()
            events: tuple[Event, ...] = ()
            if error_type is not None:
                # The type only, never the message or a traceback: both can quote parameters.
                events = (Event(_names.EXCEPTION_EVENT, {_names.EXCEPTION_TYPE: error_type}, end_ns),)
            self._leaf.emit(
                name, SpanKind.CLIENT, parent, start_ns, end_ns, attributes, events, error_type is not None
            )
        else:
            span = self._tracer.start_span(
                name, context=parent_context, kind=SpanKind.CLIENT, start_time=start_ns, attributes=attributes
            )
            if error_type is not None and span.is_recording():
                span.add_event(_names.EXCEPTION_EVENT, {_names.EXCEPTION_TYPE: error_type})
                span.set_status(Status(StatusCode.ERROR))
            span.end()
        return parent, error_type

    def _record_duration(
        self, pending: _Pending, error_type: str | None, elapsed_end: float, parent: SpanContext
    ) -> None:
        info, operation = pending[0], pending[1]
        series = info.series.get((operation, error_type))
        if series is None:
            metric_attributes = dict(info.metric_attributes)
            if operation is not None:
                metric_attributes[_names.DB_OPERATION_NAME] = operation
            if error_type is not None:
                metric_attributes[_names.ERROR_TYPE] = error_type
            if self._fast_duration is None:
                self._duration.record(elapsed_end - pending[6], metric_attributes)
                return
            series = (metric_attributes, frozenset(metric_attributes.items()))
            if len(info.series) < _MAX_SERIES_PER_ENGINE:  # operations are a closed set; errors few
                info.series[operation, error_type] = series
        assert self._fast_duration is not None
        self._fast_duration.record_keyed(elapsed_end - pending[6], series[1], series[0], parent)


INSTRUMENTOR = SQLAlchemyInstrumentor()
