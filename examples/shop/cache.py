"""The price cache: Redis when ``REDIS_URL`` is set, else an in-process ``cachetools.TTLCache``.

Both sides speak the same operations (``get_many`` is one round trip: ``MGET`` on Redis). The
in-process cache is a plain mapping held in ``InProcessCache.store``, so a caller can wrap it
(``otelperf.instrument_cache``) without this module knowing about otelperf.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any, Protocol

import cachetools


class PriceCache(Protocol):
    kind: str

    async def get(self, key: str) -> str | None: ...
    async def get_many(self, keys: Sequence[str]) -> list[str | None]: ...
    async def set(self, key: str, value: str) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def close(self) -> None: ...


class InProcessCache:
    kind = "in-process"

    def __init__(self, ttl_s: float, maxsize: int = 10_000) -> None:
        self.store: MutableMapping[str, str] = cachetools.TTLCache(maxsize=maxsize, ttl=ttl_s)

    async def get(self, key: str) -> str | None:
        return self.store.get(key)

    async def get_many(self, keys: Sequence[str]) -> list[str | None]:
        return [self.store.get(key) for key in keys]

    async def set(self, key: str, value: str) -> None:
        self.store[key] = value

    async def delete(self, key: str) -> None:
        self.store.pop(key, None)

    async def close(self) -> None:
        return None


class RedisCache:
    kind = "redis"

    def __init__(self, url: str, ttl_s: float) -> None:
        import redis.asyncio as aioredis

        self.client: Any = aioredis.Redis.from_url(url, decode_responses=True)
        self.ttl_ms = max(1, int(ttl_s * 1000))

    async def get(self, key: str) -> str | None:
        value: str | None = await self.client.get(key)
        return value

    async def get_many(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        values: list[str | None] = await self.client.mget(keys)
        return values

    async def set(self, key: str, value: str) -> None:
        await self.client.set(key, value, px=self.ttl_ms)

    async def delete(self, key: str) -> None:
        await self.client.delete(key)

    async def close(self) -> None:
        await self.client.aclose()


def make_cache(redis_url: str | None, ttl_s: float) -> PriceCache:
    if redis_url:
        return RedisCache(redis_url, ttl_s)
    return InProcessCache(ttl_s)
