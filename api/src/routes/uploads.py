"""Direct uploads: ``POST /api/v1/uploads`` hands out a URL to put one document to, and
``PUT /api/v1/uploads/{upload_id}`` takes it where the store is a local directory.

On S3 the URL is presigned for the bucket itself: the document never passes through the
API. In embedded mode the API takes the PUT on a URL it signed (no API key: the signature
stands for it), streaming it to the store with the direct-upload limit, not the API's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from docjobs.domain.clock import utcnow
from docjobs.storage.local import LocalStore
from docjobs.storage.uploads import (
    UploadGrant,
    UploadSigner,
    expiry_of,
    new_upload_id,
    sweep_expired,
    upload_key,
)

from ..deps import PrincipalDep, SettingsDep
from ..errors import ApiError
from ..ratelimit import rate_limited
from ..schemas import ErrorBody, Responses, error_responses
from ..sources import input_store

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])


class UploadRequest(BaseModel):
    file_name: str = Field(min_length=1, max_length=255, examples=["scan.pdf"])
    content_type: str | None = Field(default=None, max_length=255, examples=["application/pdf"])
    size: int = Field(ge=1, description="Bytes the document has; at most the server's limit.")


class UploadCreated(BaseModel):
    """Where to put the document, and the id to submit it with once it is there."""

    upload_id: str
    url: str
    """PUT the document's bytes here (the body, nothing else), before ``expires_at``."""
    method: str = "PUT"
    headers: dict[str, str]
    """Headers to send with the PUT."""
    expires_at: datetime
    """After this the URL is refused and the upload deleted, unless submitted."""
    max_bytes: int


class UploadReceived(BaseModel):
    upload_id: str
    size: int


def _signer(request: Request) -> UploadSigner:
    signer: UploadSigner | None = getattr(request.app.state, "upload_signer", None)
    if signer is None:
        settings = request.app.state.settings
        signer = UploadSigner.from_key_or_file(
            settings.inputs.upload_signing_key, settings.data_dir / "upload-signing.key"
        )
        request.app.state.upload_signer = signer
    return signer


@router.post(
    "",
    status_code=201,
    summary="Start a direct upload: a URL to PUT the document to",
    dependencies=[Depends(rate_limited)],
    responses=error_responses(401, 413, 422, 429, 503),
)
async def create_upload(
    request: Request, principal: PrincipalDep, settings: SettingsDep, body: UploadRequest
) -> UploadCreated:
    limit = settings.inputs.max_direct_upload_bytes
    if body.size > limit:
        raise ApiError(
            413, "payload_too_large", f"The document exceeds the {limit / 1024**2:g} MB limit."
        )
    store = input_store(request.app.state, settings)
    now = utcnow()
    await asyncio.to_thread(sweep_expired, store, principal.tenant, now)
    expires_at = now + timedelta(seconds=settings.inputs.upload_ttl_seconds)
    upload_id = new_upload_id(expires_at)
    expires_at = expiry_of(upload_id) or expires_at  # whole seconds, as the id says
    key = upload_key(principal.tenant, upload_id, body.file_name)
    headers = {"Content-Type": body.content_type or "application/octet-stream"}
    if isinstance(store, LocalStore):
        grant = UploadGrant(
            principal.tenant, upload_id, body.file_name, limit, int(expires_at.timestamp())
        )
        url = request.url_for("put_upload", upload_id=upload_id).include_query_params(
            tenant=grant.tenant,
            name=grant.file_name,
            max_bytes=grant.max_bytes,
            expires=grant.expires,
            signature=_signer(request).sign(grant),
        )
        return UploadCreated(
            upload_id=upload_id,
            url=str(url),
            headers=headers,
            expires_at=expires_at,
            max_bytes=limit,
        )
    presign = getattr(store, "presign", None)
    if presign is None:
        raise ApiError(422, "uploads_unavailable", "This server's store takes no direct uploads.")
    url = await asyncio.to_thread(presign, "PUT", key, expires_at)
    return UploadCreated(
        upload_id=upload_id, url=str(url), headers=headers, expires_at=expires_at, max_bytes=limit
    )


_REFUSED: Responses = {
    403: {"model": ErrorBody, "description": "The URL's signature is wrong or expired."}
}


@router.put(
    "/{upload_id}",
    status_code=201,
    summary="Put a direct upload's document (embedded mode's signed URL)",
    responses={**_REFUSED, **error_responses(404, 413, 422)},
)
async def put_upload(
    request: Request,
    settings: SettingsDep,
    upload_id: str,
    tenant: Annotated[str, Query(max_length=255)],
    name: Annotated[str, Query(max_length=255)],
    max_bytes: Annotated[int, Query(ge=1)],
    expires: Annotated[int, Query(ge=0)],
    signature: Annotated[str, Query(max_length=128)],
) -> UploadReceived:
    store = input_store(request.app.state, settings)
    if not isinstance(store, LocalStore):
        raise ApiError(404, "upload_not_found", "Put the document to the URL you were given.")
    grant = UploadGrant(tenant, upload_id, name, max_bytes, expires)
    if expiry_of(upload_id) is None or not _signer(request).valid(grant, signature, utcnow()):
        raise ApiError(403, "invalid_signature", "The upload URL's signature is wrong or expired.")
    too_large = ApiError(
        413, "payload_too_large", f"The document exceeds the {max_bytes / 1024**2:g} MB limit."
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    target = store.path(upload_key(tenant, upload_id, name))
    size = await _receive(request, target, max_bytes, too_large)
    return UploadReceived(upload_id=upload_id, size=size)


async def _receive(request: Request, target: Path, max_bytes: int, too_large: ApiError) -> int:
    """Streams the body to ``target`` (whole or not at all); at most ``max_bytes``."""
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    fd, name = await asyncio.to_thread(tempfile.mkstemp, dir=target.parent, prefix=".tmp-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise too_large
                if chunk:
                    await asyncio.to_thread(out.write, chunk)
            await asyncio.to_thread(_settle, out)
        await asyncio.to_thread(os.replace, name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(name).unlink()
        raise
    return size


def _settle(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())
