"""Uploads: size limits enforced while the body streams, and saving to a scratch file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError
from .gate import DIRECT_UPLOAD_PATH, refuse

T = TypeVar("T")

MULTIPART_SLACK = 1 << 20
"""Bytes of multipart framing and form fields allowed on top of the file limit."""


UPLOAD_PATH_PREFIXES = ("/api/v1/convert/", "/api/v1/ocr/", "/v1/documents/parse")
"""Routes that take a document; every other route takes a small JSON body."""
BATCH_PATH = "/api/v1/batches"
"""The route that takes many documents at once: its own, larger limit."""


class BodyLimitMiddleware:
    """Answers 413 as soon as a request body passes its route's limit, before it is all read:
    uploads get ``upload_bytes``, every other route (JSON CRUD) the far smaller
    ``json_bytes``."""

    def __init__(
        self, app: ASGIApp, upload_bytes: int, json_bytes: int, batch_bytes: int = 0
    ) -> None:
        self.app = app
        self.upload_bytes = upload_bytes
        self.json_bytes = json_bytes
        self.batch_bytes = batch_bytes

    def limit_of(self, path: str) -> tuple[int, str]:
        """The route's limit in bytes, and the refusal's message."""
        if path == BATCH_PATH and self.batch_bytes:
            limit_mb = self.batch_bytes / (1024 * 1024)
            return (
                self.batch_bytes + MULTIPART_SLACK,
                f"The batch exceeds the {limit_mb:g} MB limit of all its files together.",
            )
        if path.startswith(UPLOAD_PATH_PREFIXES):
            limit_mb = self.upload_bytes / (1024 * 1024)
            return (
                self.upload_bytes + MULTIPART_SLACK,
                f"The upload exceeds the {limit_mb:g} MB limit.",
            )
        limit_kb = self.json_bytes / 1024
        return self.json_bytes, f"The request body exceeds the {limit_kb:g} KB limit."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "PUT" and scope["path"].startswith(DIRECT_UPLOAD_PATH):
            await self.app(scope, receive, send)
            return
        max_bytes, refusal = self.limit_of(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await refuse(send, 413, "payload_too_large", refusal)
            return
        seen = 0
        exceeded = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
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
            await refuse(send, 413, "payload_too_large", refusal)


@dataclass(frozen=True)
class Upload:
    """The document as a request carries it: a ``file`` part, text in a ``content`` field,
    or a reference: a ``source_url`` (``https://`` or ``s3://``) or a direct upload's id."""

    file: UploadFile | None
    content: str | None = None
    default_name: str = "document"
    """The file name when the part has none, or for ``content``."""
    source_url: str | None = None
    upload_id: str | None = None

    @property
    def by_reference(self) -> bool:
        given = [self.file, self.content, self.source_url, self.upload_id]
        if sum(part is not None for part in given) > 1:
            raise ApiError(
                400,
                "too_many_documents",
                "Send one of 'file', 'content', 'source_url' or 'upload_id'.",
            )
        return self.source_url is not None or self.upload_id is not None


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


async def save_upload(
    upload: Upload, scratch_dir: Path, max_bytes: int, then: Callable[[SavedUpload], T]
) -> tuple[SavedUpload, T]:
    """Copy the ``file`` part, or the ``content`` field, to a scratch file; then
    ``then(saved)`` (an inspection) in the thread that writes the last bytes, so that a
    small document costs one thread hop."""
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
    last = b""  # not written yet: written in the thread that then runs ``then``
    try:
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
                if last:
                    await asyncio.to_thread(handle.write, last)
                last = chunk
        else:
            last = (content or "").encode()
            if len(last) > max_bytes:
                raise ApiError(413, "payload_too_large", "The content exceeds the size limit.")
            size = len(last)
            digest.update(last)
        if size == 0:
            raise ApiError(400, "empty_file", "The document is empty.")
        saved.size, saved.sha256 = size, digest.hexdigest()
        return saved, await asyncio.to_thread(_finish, handle, last, saved, then)
    except BaseException:
        handle.close()
        saved.discard()
        raise


def _finish(
    handle: IO[bytes], last: bytes, saved: SavedUpload, then: Callable[[SavedUpload], T]
) -> T:
    with handle:
        handle.write(last)
    return then(saved)
