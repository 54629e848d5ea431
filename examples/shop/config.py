"""The shop's configuration, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SQLITE_PATH = Path(__file__).resolve().parent.parent / "shop.db"


def _async_database_url(url: str) -> str:
    """Accept the plain URLs people (and scripts/services.sh) write, and pick the async driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


@dataclass(frozen=True)
class Config:
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"
    redis_url: str | None = None
    seed_orders: int = 300
    seed_customers: int = 50
    seed_products: int = 100
    # The stock ledger's size: its history endpoint scans it, so this sets how slow that query is
    # (PostgreSQL on a laptop: ~150 ms at 2,000,000 rows). Small by default: seeding takes time.
    seed_stock_movements: int = 20_000
    # PBKDF2-SHA256 iterations: ~50 ms per login on a laptop core; OWASP asks for more in production.
    password_iterations: int = 100_000
    price_ttl_s: float = 30.0
    cache_prefix: str = "shop:"
    inventory_url: str = "http://127.0.0.1:8000/internal/stock/{product_id}"
    max_upload_bytes: int = 5 * 1024 * 1024
    # Test hook (SHOP_INJECT_LATENCY_MS / SHOP_INJECT_LATENCY_ROUTE): sleep this long in one route, so
    # the baseline-regression tests have a "deliberately slowed build" without a second copy of the code.
    inject_latency_ms: float = 0.0
    inject_latency_route: str = "GET /orders/{order_id}"
    # Test hook (SHOP_INJECT_N_PLUS_ONE=1): "version 2" of GET /orders/{order_id} looks up each
    # item's product one query at a time, a new N+1 for the finding-lifecycle tests.
    inject_n_plus_one: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            database_url=_async_database_url(env.get("DATABASE_URL") or default.database_url),
            redis_url=env.get("REDIS_URL") or None,
            seed_orders=int(env.get("SHOP_SEED_ORDERS", default.seed_orders)),
            seed_stock_movements=int(env.get("SHOP_SEED_STOCK_MOVEMENTS", default.seed_stock_movements)),
            password_iterations=int(env.get("SHOP_PASSWORD_ITERATIONS", default.password_iterations)),
            price_ttl_s=float(env.get("SHOP_PRICE_TTL", default.price_ttl_s)),
            cache_prefix=env.get("SHOP_CACHE_PREFIX", default.cache_prefix),
            inventory_url=env.get("SHOP_INVENTORY_URL", default.inventory_url),
            inject_latency_ms=float(env.get("SHOP_INJECT_LATENCY_MS", default.inject_latency_ms)),
            inject_latency_route=env.get("SHOP_INJECT_LATENCY_ROUTE", default.inject_latency_route),
            inject_n_plus_one=env.get("SHOP_INJECT_N_PLUS_ONE", "") == "1",
        )

    def with_database_url(self, url: str) -> Config:
        from dataclasses import replace

        return replace(self, database_url=_async_database_url(url))
