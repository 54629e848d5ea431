"""GET /reports/search: slow on purpose, and slower as /orders grows; GET /reports/discounts: all
Python (examples.shop.pricing), the profiler's example.

``LIKE '%q%'`` cannot use an index, and neither ``orders.note`` nor ``orders.total_cents`` has one,
so every call scans and sorts the whole orders table (twice: once to count, once to rank).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.shop import pricing
from examples.shop.db import get_session
from examples.shop.models import Customer, Order

router = APIRouter(tags=["reports"])


class SearchHit(BaseModel):
    order_id: int
    customer: str
    total_cents: int
    note: str


class SearchResult(BaseModel):
    q: str
    total_matches: int
    results: list[SearchHit]


@router.get("/reports/search")
async def search_orders(
    session: Annotated[AsyncSession, Depends(get_session)],
    q: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SearchResult:
    pattern = f"%{q}%"
    matches = or_(Order.note.ilike(pattern), Customer.name.ilike(pattern))
    joined = select(Order, Customer.name).join(Customer, Customer.id == Order.customer_id).where(matches)
    total = await session.scalar(select(func.count()).select_from(joined.subquery()))
    rows = await session.execute(joined.order_by(Order.total_cents.desc(), Order.id).limit(limit))
    return SearchResult(
        q=q,
        total_matches=total or 0,
        results=[
            SearchHit(order_id=o.id, customer=name, total_cents=o.total_cents, note=o.note)
            for o, name in rows
        ],
    )


@router.get("/reports/discounts")
def discount_report(rounds: Annotated[int, Query(ge=1, le=20)] = 12) -> dict[str, int]:
    """CPU-bound on purpose (see examples.shop.pricing): a plain ``def``, so it runs in the thread
    pool, and the example of where the sampling profiler says "app" time went."""
    return pricing.discount_report(rounds)
