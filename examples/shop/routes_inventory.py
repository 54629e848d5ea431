"""GET /inventory/{id}: an outgoing HTTP call (httpx) to the stock service.

The "stock service" is ``GET /internal/stock/{id}`` of this same app by default, so the demo needs
nothing else running; point ``SHOP_INVENTORY_URL`` elsewhere to call a real one.
"""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.shop.db import get_session
from examples.shop.models import Product

router = APIRouter(tags=["inventory"])


class StockOut(BaseModel):
    product_id: int
    stock: int


class InventoryOut(StockOut):
    source: str


@router.get("/inventory/{product_id}")
async def inventory(product_id: int, request: Request) -> InventoryOut:
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


@router.get("/internal/stock/{product_id}")
async def internal_stock(product_id: int, session: Annotated[AsyncSession, Depends(get_session)]) -> StockOut:
    stock = await session.scalar(select(Product.stock).where(Product.id == product_id))
    if stock is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"product {product_id} not found")
    return StockOut(product_id=product_id, stock=stock)
