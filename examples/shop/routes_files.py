"""POST /files (multipart upload) and GET /files/{id} (download)."""

from __future__ import annotations

import hashlib
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, Response, UploadFile, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from examples.shop.auth import CurrentUser
from examples.shop.db import get_session
from examples.shop.models import StoredFile

router = APIRouter(tags=["files"])

Session = Annotated[AsyncSession, Depends(get_session)]


class FileOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str


@router.post("/files", status_code=status.HTTP_201_CREATED)
async def upload_file(file: UploadFile, session: Session, user: CurrentUser, request: Request) -> FileOut:
    limit: int = request.app.state.config.max_upload_bytes
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"files are limited to {limit} bytes")
    stored = StoredFile(
        filename=(file.filename or "upload")[:255],
        content_type=file.content_type or "application/octet-stream",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
    )
    session.add(stored)
    await session.commit()
    return FileOut(
        id=stored.id,
        filename=stored.filename,
        content_type=stored.content_type,
        size=stored.size,
        sha256=stored.sha256,
    )


@router.get("/files/{file_id}")
async def download_file(file_id: int, session: Session) -> Response:
    stored = await session.get(StoredFile, file_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"file {file_id} not found")
    return Response(
        content=stored.content,
        media_type=stored.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(stored.filename)}",
            "ETag": f'"{stored.sha256}"',
        },
    )
