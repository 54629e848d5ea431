"""/inventory: stock levels from the stock service (outgoing httpx calls), and the stock ledger.

The "stock service" is ``GET /internal/stock/{id}`` of this same app by default, so the demo needs
nothing else running; point ``SHOP_INVENTORY_URL`` elsewhere to call a real one.

* ``GET /inventory/{id}``: one call to the stock service.
* ``GET /inventory``: an HTTP N+1 on purpose: the overview of a page of products calls the stock
  service once per product, one after the other (the fix: a batch endpoint, or concurrent calls).
* ``GET /inventory/{id}/movements``: a slow query on purpose: a product's latest stock movements,
  filtered on ``stock_movements.product_id``, which has no index, so every call scans the whole
  ledger (``SHOP_SEED_STOCK_MOVEMENTS`` sets its size).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.shop.db import get_session
from examples.shop.models import Product, StockMovement

router = APIRouter(tags=["inventory"])

Session = Annotated[AsyncSession, Depends(get_session)]


class StockOut(BaseModel):
    product_id: int
    stock: int


class InventoryOut(StockOut):
    source: str


class MovementOut(BaseModel):
    id: int
    change: int
    reason: str
    created_at: datetime


async def _stock(request: Request, product_id: int) -> InventoryOut:
    """One call to the stock service; its failures become 404 / 502 answers."""
    client: httpx.AsyncClient = request.app.state.http
    url = request.app.state.config.inventory_url.format(product_id=product_id)
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"inventory service unreachable: {exc!r}") from exc
    if response.status_code == status.HTTP_404_NOT_FOUND:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"product {product_id} not found")
    if response.is_error:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"inventory service answered {response.status_code}")
    stock = StockOut.model_validate(response.json())
    return InventoryOut(product_id=stock.product_id, stock=stock.stock, source=url)


@router.get("/inventory")
async def inventory_overview(
    session: Session,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[InventoryOut]:
    product_ids = (
        await session.scalars(select(Product.id).order_by(Product.id).limit(limit).offset(offset))
    ).all()
    await session.close()  # no connection held while waiting on the stock service
    return [await _stock(request, product_id) for product_id in product_ids]  # N+1: one call each


@router.get("/inventory/{product_id}")
async def inventory(product_id: int, request: Request) -> InventoryOut:
    return await _stock(request, product_id)


@router.get("/inventory/{product_id}/movements")
async def stock_movements(
    product_id: int, session: Session, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[MovementOut]:
    rows = await session.execute(
        select(StockMovement.id, StockMovement.change, StockMovement.reason, StockMovement.created_at)
        .where(StockMovement.product_id == product_id)
        .order_by(StockMovement.created_at.desc(), StockMovement.id.desc())
        .limit(limit)
    )
    return [MovementOut(id=i, change=c, reason=r, created_at=t) for i, c, r, t in rows]


@router.get("/internal/stock/{product_id}")
async def internal_stock(product_id: int, session: Session) -> StockOut:
    stock = await session.scalar(select(Product.stock).where(Product.id == product_id))
    if stock is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"product {product_id} not found")
    return StockOut(product_id=product_id, stock=stock)
