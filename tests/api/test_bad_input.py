"""Hostile and broken input gets a clear 4xx with the one error shape, never a 500.

Most cases run against the app in process (``api``); a body streamed over a real socket and
the HTML sandbox use the server process.
"""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from pypdf import PdfReader, PdfWriter

from tests.docs import pdf_with_pages, png_claiming

OCR = "/api/v1/ocr/extract/simple"


def post(server, key, path, files=None, data=None, params=None, timeout=120):
    return requests.post(
        f"{server.base}{path}",
        headers={"X-API-Key": key},
        files=files,
        data=data,
        params=params,
        timeout=timeout,
    )


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"], body
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def encrypted_pdf() -> bytes:
    pdf, _ = pdf_with_pages(1)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def no_pages_pdf() -> bytes:
    out = io.BytesIO()
    PdfWriter().write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "payload", "content_type", "status", "code"),
    [
        ("empty.pdf", b"", "application/pdf", 400, "empty_file"),
        ("truncated.pdf", pdf_with_pages(2)[0][:300], "application/pdf", 400, "unreadable_pdf"),
        ("nopages.pdf", no_pages_pdf(), "application/pdf", 400, "no_pages"),
        ("locked.pdf", encrypted_pdf(), "application/pdf", 400, "encrypted_pdf"),
        ("bomb.png", png_claiming(60_000, 60_000), "image/png", 400, "image_too_large"),
        ("notes.txt", b"just some text", "text/plain", 415, "unsupported_media_type"),
        (
            "archive.zip",
            b"PK\x03\x04" + b"\x00" * 100,
            "application/zip",
            415,
            "unsupported_media_type",
        ),
    ],
)
@pytest.mark.anyio
async def test_broken_documents_are_refused_before_queueing(
    api, name, payload, content_type, status, code
) -> None:
    key = api.key("broken-documents")
    before = (await api.get(key, "/api/v1/jobs")).json()
    response = await api.post(key, OCR, files={"file": (name, payload, content_type)})
    assert_error(response, status, code)
    after = (await api.get(key, "/api/v1/jobs")).json()
    assert after["total"] == before["total"]


def test_upload_over_50_mb_is_refused_while_streaming(server, api_key) -> None:
    boundary = "docjobs-test-boundary"

    def chunked_multipart():
        """No Content-Length: the server can only notice the size while reading."""
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.pdf"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n'
        ).encode()
        for _ in range(51):
            yield b"0" * (1 << 20)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = requests.post(
        f"{server.base}{OCR}",
        data=chunked_multipart(),
        timeout=60,
        headers={"X-API-Key": api_key, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error(response, 413, "payload_too_large")
    declared = post(
        server, api_key, OCR, files={"file": ("big.pdf", b"%PDF-1.4\n" + b"0" * (51 << 20))}
    )
    assert_error(declared, 413, "payload_too_large")


@pytest.mark.anyio
async def test_bad_parameters_are_422(api) -> None:
    key = api.key("bad-parameters")
    pdf, _ = pdf_with_pages(2)
    files = {"file": ("two.pdf", pdf, "application/pdf")}
    assert_error(
        await api.post(key, OCR, files=files, data={"language": "klingon"}),
        422,
        "unsupported_language",
    )
    assert_error(
        await api.post(key, OCR, files=files, data={"pages": "2-5"}),
        422,
        "page_range_out_of_bounds",
    )
    assert_error(await api.post(key, OCR, files=files, data={"pages": "one"}), 422)
    assert_error(await api.post(key, OCR, files=files, data={"output": "fancy"}), 422)
    assert_error(await api.get(key, "/api/v1/jobs?limit=0"), 422)
    assert_error(await api.get(key, "/api/v1/jobs?status=done"), 422)


@pytest.mark.anyio
async def test_keys_are_required_and_checked(api) -> None:
    key = api.key("key-checks")
    url = "/api/v1/jobs"
    assert_error(await api.client.get(url), 401, "missing_api_key")
    assert_error(await api.get("dj_000000000000_" + "x" * 32, url), 401, "invalid_api_key")
    assert_error(await api.get(key[:-1] + "?", url), 401)
    assert_error(await api.get(key, f"{url}/job_does_not_exist"), 404, "job_not_found")


@pytest.mark.anyio
async def test_invalid_json_and_binary_text_are_refused(api) -> None:
    key = api.key("bad-text")
    assert_error(
        await api.post(key, "/api/v1/convert/json-to-pdf", data={"content": '{"a": 1,'}), 400
    )
    png = png_claiming(10, 10)
    assert_error(
        await api.post(
            key, "/api/v1/convert/html-to-pdf", files={"file": ("page.html", png, "text/html")}
        ),
        415,
    )
    assert_error(await api.post(key, "/api/v1/convert/text-to-pdf"), 400, "missing_file")


class _Listener(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Listener.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"body { color: red }")

    def log_message(self, *args: object) -> None:
        pass


def test_html_cannot_fetch_urls_or_read_local_files(server, api_key) -> None:
    listener = ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    port = listener.server_address[1]
    html = f"""<html><head>
      <link rel="stylesheet" href="http://127.0.0.1:{port}/style.css">
      <style>@import url("http://127.0.0.1:{port}/import.css");
      @font-face {{ font-family: X; src: url("http://127.0.0.1:{port}/font.ttf"); }}</style>
      </head><body><h1>Report</h1>
      <img src="http://127.0.0.1:{port}/pixel.png">
      <img src="file:///etc/passwd"><object data="file:///etc/passwd"></object>
      <iframe src="file:///etc/passwd"></iframe>
      <a rel="attachment" href="file:///etc/passwd">secrets</a>
      <link rel="attachment" href="file:///etc/passwd">
      </body></html>"""
    try:
        response = post(server, api_key, "/api/v1/convert/html-to-pdf", data={"content": html})
    finally:
        listener.shutdown()
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert _Listener.hits == []
    reader = PdfReader(io.BytesIO(response.content))
    assert "Report" in reader.pages[0].extract_text()
    assert b"root:x:0:0" not in response.content
    assert not reader.attachments
    assert "root:x:0:0" not in "".join(p.extract_text() for p in reader.pages)
