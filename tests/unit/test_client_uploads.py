"""The PUT of a direct upload as the client builds it: what a presigned S3 URL needs (a
declared length; S3 refuses a chunked PUT), nothing of the API's credentials, and a file
sent a chunk at a time rather than read whole."""

from __future__ import annotations

import asyncio
from pathlib import Path

from docjobs.client.models import DirectUpload
from docjobs.client.uploads import CHUNK_BYTES, UploadFacts, afile_chunks, file_chunks, put_request

UPLOAD = DirectUpload(
    upload_id="up_1_x",
    url="https://bucket.example.com/t/.uploads/up_1_x/scan.pdf?X-Amz-Signature=abc",
    headers={"Content-Type": "application/pdf"},
    expires_at="2030-01-01T00:00:00Z",
    max_bytes=1 << 30,
)


def test_a_file_is_put_in_chunks_with_its_length_and_no_api_key(tmp_path: Path) -> None:
    scan = tmp_path / "scan.pdf"
    content = bytes(range(256)) * (CHUNK_BYTES // 256) * 2 + b"tail"
    scan.write_bytes(content)
    facts = UploadFacts.of(scan, None, None)
    assert (facts.file_name, facts.content_type, facts.size) == (
        "scan.pdf",
        "application/pdf",
        len(content),
    )

    request = put_request(UPLOAD, facts.size, file_chunks(scan))
    assert request.method == "PUT" and str(request.url) == UPLOAD.url
    assert request.headers["Content-Length"] == str(len(content))
    assert "Transfer-Encoding" not in request.headers
    assert "X-API-Key" not in request.headers
    assert request.headers["Content-Type"] == "application/pdf"
    chunks = list(request.stream)
    assert max(len(chunk) for chunk in chunks) <= CHUNK_BYTES < len(content)
    assert b"".join(chunks) == content


def test_the_asyncio_client_reads_the_file_the_same_way(tmp_path: Path) -> None:
    scan = tmp_path / "scan.pdf"
    content = b"x" * (CHUNK_BYTES + 5)
    scan.write_bytes(content)

    async def read() -> list[bytes]:
        request = put_request(UPLOAD, len(content), afile_chunks(scan))
        assert request.headers["Content-Length"] == str(len(content))
        return [chunk async for chunk in request.stream]

    chunks = asyncio.run(read())
    assert [len(chunk) for chunk in chunks] == [CHUNK_BYTES, 5]
