"""Uploads: size limits enforced while the body streams, and saving to a scratch file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_body

MULTIPART_SLACK = 1 << 20
"""Bytes of multipart framing and form fields allowed on top of the file limit."""


class BodyLimitMiddleware:
    """Answers 413 as soon as a request body passes the limit, before it is all read."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send)
            return
        seen = 0
        exceeded = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not exceeded:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        import json

        limit_mb = (self.max_body_bytes - MULTIPART_SLACK) / (1024 * 1024)
        body = json.dumps(
            error_body("payload_too_large", f"The upload exceeds the {limit_mb:g} MB limit.")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class Upload:
    """The document as a request carries it: a ``file`` part, or text in a ``content`` field."""

    file: UploadFile | None
    content: str | None = None
    default_name: str = "document"
    """The file name when the part has none, or for ``content``."""


@dataclass
class SavedUpload:
    path: Path
    file_name: str
    declared_type: str | None
    size: int
    sha256: str

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def save_upload(upload: Upload, scratch_dir: Path, max_bytes: int) -> SavedUpload:
    """Copy the ``file`` part, or the ``content`` field, to a scratch file."""
    file, content, default_name = upload.file, upload.content, upload.default_name
    if file is None and content is None:
        raise ApiError(
            400, "missing_file", "Send the document as a 'file' part or 'content' field."
        )
    scratch_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    handle = tempfile.NamedTemporaryFile(dir=scratch_dir, prefix="upload-", delete=False)  # noqa: SIM115
    saved = SavedUpload(Path(handle.name), default_name, None, 0, "")
    try:
        with handle:
            if file is not None:
                saved.file_name = Path(file.filename or default_name).name or default_name
                saved.declared_type = file.content_type
                while chunk := await file.read(1 << 20):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ApiError(
                            413,
                            "payload_too_large",
                            f"The file exceeds the {max_bytes / (1024 * 1024):g} MB limit.",
                        )
                    digest.update(chunk)
                    await asyncio.to_thread(handle.write, chunk)
            else:
                data = (content or "").encode()
                if len(data) > max_bytes:
                    raise ApiError(413, "payload_too_large", "The content exceeds the size limit.")
                size = len(data)
                digest.update(data)
                await asyncio.to_thread(handle.write, data)
    except BaseException:
        saved.discard()
        raise
    if size == 0:
        saved.discard()
        raise ApiError(400, "empty_file", "The document is empty.")
    saved.size, saved.sha256 = size, digest.hexdigest()
    return saved
