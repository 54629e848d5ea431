"""Fixtures shared by the Redis integration tests: a real client whose keys are removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own; every key under it is deleted after the test."""
    return f"otelperf-test:{uuid.uuid4().hex}:"


@pytest.fixture
def client(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    try:
        yield r
    finally:
        keys = r.keys(prefix + "*")
        if keys:
            r.delete(*keys)
        r.close()


@pytest.fixture
async def aclient(redis_url: str, prefix: str) -> AsyncIterator[redis.asyncio.Redis]:
    r = redis.asyncio.Redis.from_url(redis_url)
    try:
        yield r
    finally:
        keys = await r.keys(prefix + "*")
        if keys:
            await r.delete(*keys)
        await r.aclose()
