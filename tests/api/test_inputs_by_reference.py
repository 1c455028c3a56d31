"""Documents by reference, in embedded mode: a ``source_url`` fetched from a real local HTTP
server, and a direct upload put to the API's own signed URL.

Two apps: one whose webhook settings allow private targets (the allowance a local receiver
needs lets a local server be fetched from), and a strict one where only the name
``localhost`` is excepted, so that loopback by address, private, link-local and a redirect
from the excepted host to a private address are each refused on their own merits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from docjobs.api.app import create_app
from docjobs.domain.clock import utcnow
from docjobs.storage.uploads import UploadGrant, new_upload_id
from tests.api.conftest import InProcessApi, app_settings, running
from tests.docs import INVOICE, INVOICE_TEMPLATE, invoice_pdf, sentence_lines

pytestmark = pytest.mark.anyio

BODY_LIMIT = 16 * 1024
"""The API's upload limit in these apps: the direct upload below is larger."""
SOURCE_LIMIT = 1024 * 1024
TEXT = "\n".join(sentence_lines(7, 12)).encode()
ENDLESS = 100 * 1024 * 1024
INVOICE_PDF = invoice_pdf()


class Handler(BaseHTTPRequestHandler):
    sent_zeros = 0

    def do_GET(self) -> None:
        if self.path == "/doc.txt":
            self._answer(200, TEXT, {"Content-Type": "text/plain"})
        elif self.path == "/invoice.pdf":
            self._answer(200, INVOICE_PDF, {"Content-Type": "application/pdf"})
        elif self.path == "/moved":
            self._answer(302, b"", {"Location": "http://10.0.0.7/doc.txt"})
        elif self.path == "/zeros":
            self.send_response(200)  # HTTP/1.0, no length: read until the server closes
            self.send_header("Content-Type", "application/pdf")
            self.end_headers()
            chunk = bytes(64 * 1024)
            try:
                for _ in range(ENDLESS // len(chunk)):
                    self.wfile.write(chunk)
                    Handler.sent_zeros += len(chunk)
            except OSError:
                pass  # the fetch stopped reading at its limit
        else:
            self._answer(404, b"", {})

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    """A local document server's port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _settings(tmp: pytest.TempPathFactory, name: str, webhooks: dict[str, Any]) -> Any:
    return app_settings(
        tmp.mktemp(name) / "data",
        webhooks=webhooks,
        limits={"max_upload_bytes": BODY_LIMIT},
        inputs={"max_source_bytes": SOURCE_LIMIT, "source_timeout_seconds": 20},
    )


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    settings = _settings(tmp_path_factory, "open", {"allow_private_targets": True})
    async with running(create_app(settings)) as api:
        yield api


@pytest.fixture(scope="module")
async def strict(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    settings = _settings(tmp_path_factory, "strict", {"allowed_hosts": ["localhost"]})
    async with running(create_app(settings)) as api:
        yield api


async def _convert(api: InProcessApi, key: str, data: dict[str, str], **params: str) -> Any:
    return await api.post(key, "/api/v1/convert/text-to-pdf", data=data, params=params)


async def test_source_url_is_fetched_and_processed_like_an_upload(
    api: InProcessApi, origin: int
) -> None:
    key = api.key("ref-fetch")
    url = f"http://127.0.0.1:{origin}/doc.txt"
    answer = await _convert(api, key, {"source_url": url})
    assert answer.status_code == 200, answer.text
    assert answer.content.startswith(b"%PDF")
    # The same bytes uploaded are the same job: fetched documents are deduplicated by content.
    first = await _convert(api, key, {"source_url": url}, **{"async": "true"})
    again = await api.post(
        key,
        "/api/v1/convert/text-to-pdf",
        files={"file": ("doc.txt", TEXT, "text/plain")},
        params={"async": "true"},
    )
    assert first.status_code == 202 and again.status_code == 202, again.text
    assert again.json()["job_id"] == first.json()["job_id"]
    job = await api.wait_for(key, first.json()["job_id"])
    assert job["status"] == "complete", job


async def test_the_parse_api_reads_a_source_url(api: InProcessApi, origin: int) -> None:
    key = api.key("ref-parse")
    template = await api.post(key, "/v1/templates", json=INVOICE_TEMPLATE)
    answer = await api.post(
        key,
        "/v1/documents/parse",
        data={
            "templateId": template.json()["templateId"],
            "source_url": f"http://127.0.0.1:{origin}/invoice.pdf",
        },
    )
    assert answer.status_code == 200, answer.text
    assert INVOICE["number"] in answer.text


@pytest.mark.parametrize(
    ("path", "refusal"),
    [
        ("http://127.0.0.1:{port}/doc.txt", "127.0.0.1 is not a public address"),
        ("http://10.1.2.3/doc.txt", "10.1.2.3 is not a public address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is not a public address"),
        ("http://localhost:{port}/moved", "10.0.0.7 is not a public address"),
        ("ftp://example.com/doc.txt", "scheme must be http or https"),
    ],
)
async def test_unsafe_sources_are_refused_with_a_reason(
    strict: InProcessApi, origin: int, path: str, refusal: str
) -> None:
    key = strict.key("ref-strict")
    answer = await _convert(strict, key, {"source_url": path.format(port=origin)})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "unsafe_source_url"
    assert refusal in error["message"]
    assert "ALLOW_PRIVATE_TARGETS" in error["message"] or "scheme" in refusal


async def test_s3_sources_need_the_installations_leave(strict: InProcessApi) -> None:
    key = strict.key("ref-s3")
    answer = await _convert(strict, key, {"source_url": "s3://someone-elses/doc.txt"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "source_bucket_not_allowed"


async def test_the_excepted_host_is_fetched_over_http(strict: InProcessApi, origin: int) -> None:
    key = strict.key("ref-strict-ok")
    answer = await _convert(strict, key, {"source_url": f"http://localhost:{origin}/doc.txt"})
    assert answer.status_code == 200, answer.text


async def test_an_endless_source_is_cut_at_the_limit(api: InProcessApi, origin: int) -> None:
    key = api.key("ref-endless")
    started = time.monotonic()
    answer = await api.post(
        key,
        "/api/v1/ocr/extract/simple",
        data={"source_url": f"http://127.0.0.1:{origin}/zeros"},
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert "1 MB" in answer.json()["error"]["message"]
    assert time.monotonic() - started < 10
    assert Handler.sent_zeros < ENDLESS // 4


async def test_a_direct_upload_larger_than_the_body_limit_becomes_a_job(
    api: InProcessApi,
) -> None:
    key = api.key("ref-direct")
    text = "\n".join(sentence_lines(11, 600)).encode()
    assert len(text) > 2 * BODY_LIMIT
    through_api = await api.post(
        key, "/api/v1/convert/text-to-pdf", files={"file": ("big.txt", text, "text/plain")}
    )
    assert through_api.status_code == 413
    created = await api.post(
        key,
        "/api/v1/uploads",
        json={"file_name": "big.txt", "content_type": "text/plain", "size": len(text)},
    )
    assert created.status_code == 201, created.text
    upload = created.json()
    put = await api.request("PUT", "", upload["url"], content=text)
    assert put.status_code == 201, put.text
    assert put.json()["size"] == len(text)

    other = api.key("ref-direct-other")
    stolen = await _convert(api, other, {"upload_id": upload["upload_id"]}, **{"async": "true"})
    assert stolen.status_code == 404
    assert stolen.json()["error"]["code"] == "upload_not_found"

    queued = await _convert(api, key, {"upload_id": upload["upload_id"]}, **{"async": "true"})
    assert queued.status_code == 202, queued.text
    job = await api.wait_for(key, queued.json()["job_id"])
    assert job["status"] == "complete", job
    # An upload serves one submission.
    used = await _convert(api, key, {"upload_id": upload["upload_id"]}, **{"async": "true"})
    assert used.status_code == 404


async def test_a_forged_or_expired_upload_url_is_refused(api: InProcessApi) -> None:
    key = api.key("ref-forged")
    created = await api.post(key, "/api/v1/uploads", json={"file_name": "a.txt", "size": len(TEXT)})
    url: str = created.json()["url"]
    forged = url.replace("max_bytes=", "max_bytes=9")
    answer = await api.request("PUT", "", forged, content=TEXT)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "invalid_signature"

    past = utcnow() - timedelta(seconds=5)
    grant = UploadGrant("ref-forged", new_upload_id(past), "a.txt", 1000, int(past.timestamp()))
    signature = api.app.state.upload_signer.sign(grant)  # a real signature, out of date
    expired = (
        f"/api/v1/uploads/{grant.upload_id}?tenant={grant.tenant}&name=a.txt"
        f"&max_bytes=1000&expires={grant.expires}&signature={signature}"
    )
    answer = await api.request("PUT", "", expired, content=TEXT)
    assert answer.status_code == 403

    too_big = await api.post(key, "/api/v1/uploads", json={"file_name": "a.txt", "size": 1 << 40})
    assert too_big.status_code == 413
