"""A tenant over its rate is refused while only the headers of its request have come: a
40 MB upload (or a template) that is never sent is answered 429 at once, with the usual
rate-limit headers, and the connection is closed rather than drained."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import Server

UPLOAD_BYTES = 40 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    plans = {"free": "1/minute", "business": "6000/minute"}
    srv = Server(
        tmp_path_factory.mktemp("rate-before-body") / "data",
        env={
            "DOCJOBS_RATE_LIMITS__PLANS": json.dumps(plans),
            "DOCJOBS_RATE_LIMITS__MANAGEMENT": "1/minute",
            "DOCJOBS_RUNNER__CONCURRENCY": "1",
        },
    ).start()
    yield srv
    srv.stop()


def answer_to_head_only(server: Server, head: str) -> tuple[str, dict[str, str], bytes]:
    """Sends only ``head`` (it announces a body that never comes) and reads the answer:
    status line, headers and body, up to the server closing the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        received = b""
        while chunk := sock.recv(65536):  # times out unless the server answers and closes
            received += chunk
    raw_head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = raw_head.decode().split("\r\n")
    headers = {name.lower(): value for name, _, value in (h.partition(": ") for h in lines)}
    return status, headers, body


def post_head(path: str, key: str, content_type: str, length: int) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: docjobs\r\nX-API-Key: {key}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )


def test_an_upload_over_the_plan_rate_is_refused_before_its_body(server: Server) -> None:
    key = server.key("hasty", plan="free")
    convert = f"{server.base}/api/v1/convert/text-to-pdf?async=true"
    first = requests.post(convert, headers={"X-API-Key": key}, data={"content": "one"}, timeout=30)
    assert first.status_code == 202, first.text

    head = post_head(
        "/api/v1/convert/text-to-pdf?async=true",
        key,
        "multipart/form-data; boundary=cut",
        UPLOAD_BYTES,
    )
    status, headers, body = answer_to_head_only(server, head)
    assert status == "HTTP/1.1 429 Too Many Requests"
    assert headers["connection"] == "close"
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit"] == "1"
    assert headers["x-ratelimit-remaining"] == "0"
    error = json.loads(body)["error"]
    assert error["code"] == "rate_limited"
    assert "plan 'free'" in error["message"]

    # Counted once, by the gate: a business tenant's upload goes through as before, and its
    # headers tell the count of that one request.
    other = server.key("patient")
    allowed = requests.post(
        convert, headers={"X-API-Key": other}, data={"content": "t"}, timeout=30
    )
    assert allowed.status_code == 202, allowed.text
    assert allowed.headers["X-RateLimit-Remaining"] == "5999"


def test_a_template_over_the_management_rate_is_refused_before_its_body(server: Server) -> None:
    key = server.key("configurer")
    listed = requests.get(f"{server.base}/v1/templates", headers={"X-API-Key": key}, timeout=10)
    assert listed.status_code == 200, listed.text

    status, headers, body = answer_to_head_only(
        server, post_head("/v1/templates", key, "application/json", 50_000)
    )
    assert status == "HTTP/1.1 429 Too Many Requests"
    assert json.loads(body)["error"]["code"] == "rate_limited"
    assert "template and webhook requests" in json.loads(body)["error"]["message"]
    assert headers["x-ratelimit-remaining"] == "0"
