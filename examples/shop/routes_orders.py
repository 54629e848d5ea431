"""/orders: CRUD, and the two list endpoints that return the same data.

``GET /orders`` is the N+1 on purpose: one query for the orders, then one awaited query per order
for its items (what a lazy-loading relationship does behind your back in sync code).
``GET /orders-eager`` is the fix: ``selectinload`` fetches every order's items in one more query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from examples.shop.auth import CurrentUser
from examples.shop.db import get_session
from examples.shop.models import Customer, Order, OrderItem, Product

router = APIRouter(tags=["orders"])

Session = Annotated[AsyncSession, Depends(get_session)]
Limit = Annotated[int, Query(ge=1, le=200)]


class ItemOut(BaseModel):
    product_id: int
    quantity: int
    unit_price_cents: int


class OrderOut(BaseModel):
    id: int
    customer_id: int
    status: str
    total_cents: int
    note: str
    created_at: datetime
    items: list[ItemOut]


class ItemIn(BaseModel):
    product_id: int
    quantity: int = Field(ge=1, le=1000)


class OrderIn(BaseModel):
    customer_id: int
    items: list[ItemIn] = Field(min_length=1, max_length=50)
    note: str = Field(default="", max_length=2000)


class OrderPatch(BaseModel):
    status: str = Field(pattern="^(new|paid|shipped|delivered|cancelled)$")


def _to_out(order: Order, items: list[OrderItem]) -> OrderOut:
    return OrderOut(
        id=order.id,
        customer_id=order.customer_id,
        status=order.status,
        total_cents=order.total_cents,
        note=order.note,
        created_at=order.created_at,
        items=[
            ItemOut(product_id=i.product_id, quantity=i.quantity, unit_price_cents=i.unit_price_cents)
            for i in items
        ],
    )


def _orders_query(customer_id: int | None, limit: int) -> Select[Any]:  # 2.0 and 2.1 type Select differently
    query = select(Order).order_by(Order.id.desc()).limit(limit)
    if customer_id is not None:
        query = query.where(Order.customer_id == customer_id)
    return query


@router.get("/orders")
async def list_orders_n_plus_one(
    session: Session, customer_id: int | None = None, limit: Limit = 20
) -> list[OrderOut]:
    orders = (await session.scalars(_orders_query(customer_id, limit))).all()
    out = []
    for order in orders:  # N+1: one more round trip per order
        items = (
            await session.scalars(
                select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id)
            )
        ).all()
        out.append(_to_out(order, list(items)))
    return out


@router.get("/orders-eager")
async def list_orders_eager(
    session: Session, customer_id: int | None = None, limit: Limit = 20
) -> list[OrderOut]:
    orders = (
        await session.scalars(_orders_query(customer_id, limit).options(selectinload(Order.items)))
    ).all()
    return [_to_out(order, order.items) for order in orders]


async def _load_order(session: AsyncSession, order_id: int) -> Order:
    order = await session.scalar(select(Order).where(Order.id == order_id).options(selectinload(Order.items)))
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"order {order_id} not found")
    return order


@router.get("/orders/{order_id}")
async def get_order(order_id: int, session: Session, request: Request) -> OrderOut:
    order = await _load_order(session, order_id)
    if request.app.state.config.inject_n_plus_one:  # test hook: a "version 2" with a new N+1
        for item in order.items:
            await session.get(Product, item.product_id)  # one query per item's product
    return _to_out(order, order.items)


@router.post("/orders", status_code=status.HTTP_201_CREATED)
async def create_order(body: OrderIn, session: Session, user: CurrentUser) -> OrderOut:
    if await session.get(Customer, body.customer_id) is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"customer {body.customer_id} not found")
    wanted = {i.product_id for i in body.items}
    rows = await session.execute(select(Product.id, Product.price_cents).where(Product.id.in_(wanted)))
    prices: dict[int, int] = {product_id: price for product_id, price in rows}
    if missing := wanted - prices.keys():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown products: {sorted(missing)}")
    items = [
        OrderItem(product_id=i.product_id, quantity=i.quantity, unit_price_cents=prices[i.product_id])
        for i in body.items
    ]
    order = Order(
        customer_id=body.customer_id,
        note=body.note,
        total_cents=sum(i.quantity * i.unit_price_cents for i in items),
        items=items,
    )
    session.add(order)
    await session.commit()
    return _to_out(order, items)


@router.patch("/orders/{order_id}")
async def update_order(order_id: int, body: OrderPatch, session: Session, user: CurrentUser) -> OrderOut:
    order = await _load_order(session, order_id)
    order.status = body.status
    await session.commit()
    return _to_out(order, order.items)


@router.delete("/orders/{order_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_order(order_id: int, session: Session, user: CurrentUser) -> Response:
    order = await _load_order(session, order_id)
    await session.delete(order)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
