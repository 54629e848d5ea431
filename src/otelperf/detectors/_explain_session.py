"""The EXPLAIN worker's own connection to PostgreSQL, and the statements it sends there.

See :mod:`otelperf.detectors.explain` for when and why. A session is made for one plan and closed
after it: psycopg 3 or psycopg2 when installed (both take libpq's parameters), else asyncpg on a
private event loop of the worker thread. Every session is read-only with a statement timeout
(``default_transaction_read_only``, ``statement_timeout``), and names itself ``otelperf-explain``
in ``pg_stat_activity``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["APPLICATION_NAME", "Session", "Target", "TargetKey", "UnsupportedServer", "connect", "explain"]

APPLICATION_NAME = "otelperf-explain"
STATEMENT_TIMEOUT_MS = 2000
CONNECT_TIMEOUT_S = 5

TargetKey = tuple[str | None, int | None, str | None]


@dataclass(frozen=True)
class Target:
    """How to reach one engine's database. The password stays in memory and out of every repr."""

    key: TargetKey
    host: str | None
    port: int | None
    database: str | None
    user: str | None
    password: str | None = field(default=None, repr=False)
    options: tuple[tuple[str, str], ...] = ()  # libpq parameters from the URL's query


class Session(Protocol):
    def execute(self, sql: str) -> None: ...

    def value(self, sql: str) -> Any: ...  # the first column of the first row, or None

    def close(self) -> None: ...


class _LibpqSession:
    """psycopg 3 or psycopg2: both take libpq's parameters; autocommit, so BEGIN is ours to send."""

    def __init__(self, target: Target, statement_timeout_ms: int) -> None:
        kwargs: dict[str, Any] = {
            "host": target.host,
            "port": target.port,
            "dbname": target.database,
            "user": target.user,
            "password": target.password,
            "application_name": APPLICATION_NAME,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={statement_timeout_ms} -c default_transaction_read_only=on",
            **dict(target.options),
        }
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        try:
            import psycopg
        except ImportError:
            import psycopg2

            self._conn: Any = psycopg2.connect(**kwargs)
            self._conn.autocommit = True
        else:
            self._conn = psycopg.connect(**kwargs, autocommit=True)

    def execute(self, sql: str) -> None:
        with self._conn.cursor() as cursor:
            cursor.execute(sql)

    def value(self, sql: str) -> Any:
        with self._conn.cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        self._conn.close()


class _AsyncpgSession:
    """asyncpg alone (no libpq driver installed): on a private event loop of the worker thread."""

    def __init__(self, target: Target, statement_timeout_ms: int) -> None:
        import asyncio

        import asyncpg

        options = dict(target.options)
        ssl = options.get("sslmode")
        self._loop = asyncio.new_event_loop()
        try:
            self._conn: Any = self._loop.run_until_complete(
                asyncpg.connect(
                    host=options.get("host", target.host),
                    port=target.port,
                    user=target.user,
                    password=target.password,
                    database=target.database,
                    timeout=CONNECT_TIMEOUT_S,
                    statement_cache_size=0,  # one plan per session: nothing to cache
                    ssl=ssl if ssl not in (None, "disable") else None,
                    server_settings={
                        "application_name": APPLICATION_NAME,
                        "statement_timeout": str(statement_timeout_ms),
                        "default_transaction_read_only": "on",
                    },
                )
            )
        except BaseException:
            self._loop.close()
            raise

    def execute(self, sql: str) -> None:
        self._loop.run_until_complete(self._conn.execute(sql))

    def value(self, sql: str) -> Any:
        return self._loop.run_until_complete(self._conn.fetchval(sql))

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._conn.close(timeout=CONNECT_TIMEOUT_S))
        finally:
            self._loop.close()


def connect(target: Target, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS) -> Session:
    """A new connection to ``target``'s database: psycopg, psycopg2 or asyncpg, the first installed."""
    import importlib.util

    if importlib.util.find_spec("psycopg") or importlib.util.find_spec("psycopg2"):
        return _LibpqSession(target, statement_timeout_ms)
    if importlib.util.find_spec("asyncpg"):
        return _AsyncpgSession(target, statement_timeout_ms)
    raise RuntimeError("EXPLAIN needs psycopg, psycopg2 or asyncpg installed")


class UnsupportedServer(RuntimeError):
    """PostgreSQL before 12 has no way to plan a statement without its values."""


def explain(session: Session, statement: str, parameters: int, name: str) -> tuple[Any, int]:
    """(``EXPLAIN (FORMAT JSON)`` output, backend pid) of a ``$n`` statement, planned generically."""
    version = int(session.value("SHOW server_version_num"))
    pid = int(session.value("SELECT pg_backend_pid()"))
    if version < 120000:
        raise UnsupportedServer(f"PostgreSQL {version}")
    session.execute("BEGIN TRANSACTION READ ONLY")
    try:
        if version >= 160000:
            return session.value(f"EXPLAIN (GENERIC_PLAN, FORMAT JSON) {statement}"), pid
        session.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        session.execute(f"PREPARE {name} AS {statement}")
        arguments = f"({', '.join(['NULL'] * parameters)})" if parameters else ""
        raw = session.value(f"EXPLAIN (FORMAT JSON) EXECUTE {name}{arguments}")
        session.execute(f"DEALLOCATE {name}")
        return raw, pid
    finally:
        # After an error the transaction is aborted; ROLLBACK ends it either way (and the
        # connection is closed after this, which would drop a prepared statement left behind).
        session.execute("ROLLBACK")
