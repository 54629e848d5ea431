"""CRUD on /products, and the cached hot read GET /products/{id}/price."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.shop.auth import CurrentUser
from examples.shop.cache import PriceCache
from examples.shop.db import get_session
from examples.shop.models import OrderItem, Product

router = APIRouter(tags=["products"])

Session = Annotated[AsyncSession, Depends(get_session)]


class ProductIn(BaseModel):
    sku: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=200)
    price_cents: int = Field(ge=0)
    stock: int = Field(default=0, ge=0)


class ProductOut(ProductIn):
    model_config = ConfigDict(from_attributes=True)
    id: int


class PriceOut(BaseModel):
    product_id: int
    price_cents: int
    cached: bool


def price_cache(request: Request) -> PriceCache:
    cache: PriceCache = request.app.state.cache
    return cache


def price_key(request: Request, product_id: int) -> str:
    return f"{request.app.state.config.cache_prefix}price:{product_id}"


async def _get_or_404(session: AsyncSession, product_id: int) -> Product:
    product = await session.get(Product, product_id)
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"product {product_id} not found")
    return product


@router.get("/products")
async def list_products(
    session: Session, limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0)] = 0
) -> list[ProductOut]:
    rows = await session.scalars(select(Product).order_by(Product.id).limit(limit).offset(offset))
    return [ProductOut.model_validate(p) for p in rows]


@router.get("/products/{product_id}")
async def get_product(product_id: int, session: Session) -> ProductOut:
    return ProductOut.model_validate(await _get_or_404(session, product_id))


@router.post("/products", status_code=status.HTTP_201_CREATED)
async def create_product(body: ProductIn, session: Session, user: CurrentUser) -> ProductOut:
    if await session.scalar(select(exists().where(Product.sku == body.sku))):
        raise HTTPException(status.HTTP_409_CONFLICT, f"sku {body.sku} exists")
    product = Product(**body.model_dump())
    session.add(product)
    await session.commit()
    return ProductOut.model_validate(product)


@router.put("/products/{product_id}")
async def update_product(
    product_id: int, body: ProductIn, session: Session, user: CurrentUser, request: Request
) -> ProductOut:
    product = await _get_or_404(session, product_id)
    for key, value in body.model_dump().items():
        setattr(product, key, value)
    await session.commit()
    await price_cache(request).delete(price_key(request, product_id))
    return ProductOut.model_validate(product)


@router.delete("/products/{product_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_product(product_id: int, session: Session, user: CurrentUser, request: Request) -> Response:
    product = await _get_or_404(session, product_id)
    if await session.scalar(select(exists().where(OrderItem.product_id == product_id))):
        raise HTTPException(status.HTTP_409_CONFLICT, f"product {product_id} is in orders")
    await session.delete(product)
    await session.commit()
    await price_cache(request).delete(price_key(request, product_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/products/{product_id}/price")
async def get_price(product_id: int, session: Session, request: Request) -> PriceOut:
    cache, key = price_cache(request), price_key(request, product_id)
    cached = await cache.get(key)
    if cached is not None:
        return PriceOut(product_id=product_id, price_cents=json.loads(cached)["price_cents"], cached=True)
    price = await session.scalar(select(Product.price_cents).where(Product.id == product_id))
    if price is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"product {product_id} not found")
    await cache.set(key, json.dumps({"price_cents": price}))
    return PriceOut(product_id=product_id, price_cents=price, cached=False)
