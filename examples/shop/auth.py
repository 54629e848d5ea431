"""Password hashing and bearer-token sessions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Header, HTTPException, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.shop.db import get_session
from examples.shop.models import User, UserSession

_ALGORITHM = "pbkdf2_sha256"


def hash_password(password: str, iterations: int) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (the Django format)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join(
        (_ALGORITHM, str(iterations), base64.b64encode(salt).decode(), base64.b64encode(digest).decode())
    )


def verify_password(password: str, encoded: str) -> bool:
    try:
        algorithm, iterations, salt, expected = encoded.split("$")
    except ValueError:
        return False
    if algorithm != _ALGORITHM:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(digest, base64.b64decode(expected))


async def verify_password_async(password: str, encoded: str) -> bool:
    # PBKDF2 costs tens of milliseconds of CPU; off the event loop (hashlib releases the GIL).
    return await asyncio.to_thread(verify_password, password, encoded)


def new_token() -> tuple[str, str]:
    """A bearer token and the hash stored for it."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: Annotated[str | None, Header()] = None) -> str:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    return authorization.split(" ", 1)[1].strip()


async def current_user(
    token: Annotated[str, Depends(bearer_token)],
    session: Annotated[AsyncSession, Depends(get_session)],
) -> User:
    user = await session.scalar(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.token_hash == token_hash(token))
    )
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or expired token", headers={"WWW-Authenticate": "Bearer"}
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]
