"""Engine, sessions, and the idempotent create-and-seed run at startup."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator

from fastapi import Request
from sqlalchemy import exists, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from examples.shop.config import Config
from examples.shop.models import Base, Customer, Order, OrderItem, Product, SeedMarker, User

# The stock ledger is seeded in the database itself (millions of rows: no Python objects).
# product_id cycles over the seeded products, created_at goes back one minute per row.
_SEED_MOVEMENTS_SQL = {
    "postgresql": (
        "INSERT INTO stock_movements (product_id, change, reason, created_at) "
        "SELECT :first_product + g % :products, g % 7 - 3, "
        "(ARRAY['restock', 'sale', 'return', 'adjustment'])[g / :products % 4 + 1], "
        "localtimestamp - g * interval '1 minute' FROM generate_series(1, :count) AS g"
    ),
    "sqlite": (
        "INSERT INTO stock_movements (product_id, change, reason, created_at) "
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :count) "
        "SELECT :first_product + n % :products, n % 7 - 3, "
        "CASE n / :products % 4 WHEN 0 THEN 'restock' WHEN 1 THEN 'sale' WHEN 2 THEN 'return' "
        "ELSE 'adjustment' END, "
        "datetime('now', '-' || n || ' minutes') FROM g"
    ),
}

logger = logging.getLogger("shop.db")

SEED_USERS = ("alice", "bob", "carol")
SEED_PASSWORD = "shop-demo-password"  # documented demo credential, not a secret
NOTE_WORDS = (
    "gift",
    "express",
    "fragile",
    "weekend",
    "birthday",
    "office",
    "return",
    "bulk",
    "priority",
    "sample",
    "wholesale",
    "repeat",
    "holiday",
    "invoice",
    "pickup",
)
_SEED_LOCK_ID = 7_351_001  # pg_advisory_xact_lock key: several workers start at once, one seeds


def create_engine(config: Config) -> AsyncEngine:
    if config.database_url.startswith("sqlite"):
        # A busy timeout instead of "database is locked" when several requests write at once.
        return create_async_engine(config.database_url, connect_args={"timeout": 30})
    return create_async_engine(config.database_url, pool_size=10, max_overflow=10, pool_pre_ping=True)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one session per request, from the app's session factory."""
    async with request.app.state.sessionmaker() as session:
        yield session


async def create_and_seed(engine: AsyncEngine, config: Config) -> None:
    """Create the tables and seed demo data once. Safe to run from several workers at once."""
    for attempt in range(5):
        try:
            async with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SEED_LOCK_ID})
                await conn.run_sync(Base.metadata.create_all)
                if not await conn.scalar(select(exists().where(SeedMarker.id == 1))):
                    await _seed(conn, config)
            return
        except DBAPIError:
            # SQLite has no advisory lock: a concurrent worker may have won the race.
            if attempt == 4:
                raise
            logger.info("create/seed raced with another worker, retrying", exc_info=True)
            await asyncio.sleep(0.2 * (attempt + 1))


async def _seed(conn: AsyncConnection, config: Config) -> None:
    from examples.shop.auth import hash_password

    rng = random.Random(20240601)
    session = AsyncSession(bind=conn, expire_on_commit=False)
    session.add(SeedMarker(id=1))
    for username in SEED_USERS:
        session.add(
            User(username=username, password_hash=hash_password(SEED_PASSWORD, config.password_iterations))
        )
    customers = [
        Customer(name=f"Customer {i}", email=f"customer{i}@example.com")
        for i in range(1, config.seed_customers + 1)
    ]
    products = [
        Product(
            sku=f"SKU-{i:05d}",
            name=f"Product {i}",
            price_cents=rng.randint(199, 99_999),
            stock=rng.randint(0, 500),
        )
        for i in range(1, config.seed_products + 1)
    ]
    session.add_all(customers)
    session.add_all(products)
    await session.flush()
    for _ in range(config.seed_orders):
        items = []
        for product in rng.sample(products, rng.randint(1, 5)):
            items.append(
                OrderItem(
                    product_id=product.id, quantity=rng.randint(1, 4), unit_price_cents=product.price_cents
                )
            )
        session.add(
            Order(
                customer_id=rng.choice(customers).id,
                status=rng.choice(("new", "paid", "shipped", "delivered")),
                total_cents=sum(i.quantity * i.unit_price_cents for i in items),
                note=" ".join(rng.sample(NOTE_WORDS, 3)),
                items=items,
            )
        )
    await session.flush()
    movements_sql = _SEED_MOVEMENTS_SQL.get(conn.dialect.name)
    if movements_sql is not None and config.seed_stock_movements > 0:
        await conn.execute(
            text(movements_sql),
            {
                "first_product": products[0].id,
                "products": len(products),
                "count": config.seed_stock_movements,
            },
        )
    logger.info(
        "seeded %d users, %d customers, %d products, %d orders, %d stock movements",
        len(SEED_USERS),
        len(customers),
        len(products),
        config.seed_orders,
        config.seed_stock_movements if movements_sql is not None else 0,
    )
