"""GET /catalog: a page of products with their current prices, read from the price cache.

``GET /catalog`` is a cache N+1 on purpose: one ``GET`` per product on the page (with Redis, one
round trip each), the pattern a per-item ``cache.get`` in a template loop produces.
``GET /catalog-batched`` is the fix: the page's prices in one ``MGET``. A price missing from the
cache comes from the product row the page already loaded, and is written back for the next reader.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.shop.db import get_session
from examples.shop.models import Product
from examples.shop.routes_products import price_cache, price_key

router = APIRouter(tags=["catalog"])

Session = Annotated[AsyncSession, Depends(get_session)]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0)]


class CatalogItem(BaseModel):
    product_id: int
    sku: str
    name: str
    price_cents: int
    cached: bool


async def _page(session: AsyncSession, limit: int, offset: int) -> Sequence[Product]:
    return (await session.scalars(select(Product).order_by(Product.id).limit(limit).offset(offset))).all()


async def _item(request: Request, product: Product, cached: str | None) -> CatalogItem:
    if cached is not None:
        price, hit = int(json.loads(cached)["price_cents"]), True
    else:
        price, hit = product.price_cents, False
        await price_cache(request).set(price_key(request, product.id), json.dumps({"price_cents": price}))
    return CatalogItem(
        product_id=product.id, sku=product.sku, name=product.name, price_cents=price, cached=hit
    )


@router.get("/catalog")
async def catalog_n_plus_one(
    session: Session, request: Request, limit: Limit = 20, offset: Offset = 0
) -> list[CatalogItem]:
    cache = price_cache(request)
    out = []
    for product in await _page(session, limit, offset):  # N+1: one cache round trip per product
        out.append(await _item(request, product, await cache.get(price_key(request, product.id))))
    return out


@router.get("/catalog-batched")
async def catalog_batched(
    session: Session, request: Request, limit: Limit = 20, offset: Offset = 0
) -> list[CatalogItem]:
    products = await _page(session, limit, offset)
    prices = await price_cache(request).get_many([price_key(request, p.id) for p in products])
    return [await _item(request, product, cached) for product, cached in zip(products, prices, strict=True)]
