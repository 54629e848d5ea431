"""Helpers for detector tests that run a real FastAPI app with real SQLAlchemy (SQLite, aiosqlite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from opentelemetry import context as otel_context
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

TABLES = ("users", "orders", "items", "notes")


def call(app: Any, method: str, path: str) -> httpx.Response:
    """One request through the ASGI app (httpx's own CLIENT span suppressed: server side only)."""
    import asyncio

    return asyncio.run(acall(app, method, path))


async def acall(app: Any, method: str, path: str) -> httpx.Response:
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
            return await client.request(method, path)
    finally:
        otel_context.detach(token)


def make_database(path: Path) -> str:
    """A SQLite file with a few small tables; returns its path for sync and aiosqlite URLs."""
    engine: Engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, user_id INTEGER, v INTEGER)"))
            conn.execute(text(f"INSERT INTO {table} (user_id, v) VALUES (1, 1), (1, 2), (2, 3), (2, 4)"))
    engine.dispose()
    return str(path)
