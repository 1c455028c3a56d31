"""Direct uploads as both clients send them: what the server is told of the document, and
the PUT of its bytes to the URL the server answers.

The PUT is the one request that does not go to the API with its key, and is not retried:
its body is a stream, read once.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from .models import DirectUpload

Document = Path | bytes
"""A file to upload: its path, or its bytes."""
CHUNK_BYTES = 1 << 20
"""A direct upload's file is read and sent this much at a time."""
UploadBody = bytes | Iterable[bytes] | AsyncIterable[bytes]
"""A direct upload's bytes as its PUT sends them: whole, or chunks of a file."""


@dataclass(frozen=True)
class UploadFacts:
    """What ``POST /api/v1/uploads`` is told of a document before it is put."""

    file_name: str
    content_type: str
    size: int

    @classmethod
    def of(cls, document: Document, file_name: str | None, content_type: str | None) -> UploadFacts:
        """Blocking: a path's size is read from the file system."""
        if isinstance(document, Path):
            name, size = file_name or document.name, document.stat().st_size
        else:
            name, size = file_name or "document", len(document)
        guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return cls(name, content_type or guessed, size)


def file_chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes, a chunk at a time: a large upload is never held whole."""
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk


async def afile_chunks(path: Path) -> AsyncIterator[bytes]:
    """:func:`file_chunks` for the asyncio client: each read in a worker thread."""
    file = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            yield chunk
    finally:
        await asyncio.to_thread(file.close)


def put_request(upload: DirectUpload, size: int, body: UploadBody) -> httpx.Request:
    """The PUT of a direct upload's bytes to the URL the server gave: its headers only (a
    presigned URL is its own credential; the API key stays with the API), and the length
    declared, since a store such as S3 refuses a chunked PUT."""
    headers = {**upload.headers, "Content-Length": str(size)}
    return httpx.Request(upload.method, upload.url, headers=headers, content=body)
