"""POST /login, POST /logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.shop.auth import bearer_token, new_token, token_hash, verify_password_async
from examples.shop.db import get_session
from examples.shop.models import User, UserSession

router = APIRouter(tags=["auth"])

Session = Annotated[AsyncSession, Depends(get_session)]


class LoginRequest(BaseModel):
    username: str
    password: str


class LoginResponse(BaseModel):
    token: str
    token_type: str = "bearer"


@router.post("/login")
async def login(body: LoginRequest, session: Session, request: Request) -> LoginResponse:
    user = await session.scalar(select(User).where(User.username == body.username))
    # Hash even for an unknown user, so response time does not tell which usernames exist.
    encoded = user.password_hash if user is not None else request.app.state.dummy_password_hash
    if not await verify_password_async(body.password, encoded) or user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    token, stored = new_token()
    session.add(UserSession(token_hash=stored, user_id=user.id))
    await session.commit()
    return LoginResponse(token=token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(token: Annotated[str, Depends(bearer_token)], session: Session) -> Response:
    result = await session.execute(delete(UserSession).where(UserSession.token_hash == token_hash(token)))
    await session.commit()
    if getattr(result, "rowcount", 0) == 0:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or expired token")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
