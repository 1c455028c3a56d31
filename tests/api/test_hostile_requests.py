"""Hostile requests against a real server: the key is checked before the body is read, and
each route has its own body limit."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import psutil
import pytest
import requests

from tests.conftest import Server

MB = 1024 * 1024


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: its memory is measured, so no other test may load it."""
    srv = Server(tmp_path_factory.mktemp("hostile") / "data").start()
    yield srv
    srv.stop()


def send_head(srv: Server, path: str, headers: dict[str, str], first_bytes: bytes) -> socket.socket:
    """Opens a request declaring its full length, sending only the headers and ``first_bytes``."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{srv.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + first_bytes)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, object]]:
    """Status and JSON body of the answer; raises ``TimeoutError`` while the server waits."""
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_anonymous_50_mb_body_is_refused_without_memory_or_stall(fresh_server: Server) -> None:
    srv = fresh_server
    api = psutil.Process(srv.process.pid)
    rss_before = api.memory_info().rss
    peak_rss = rss_before
    health_seconds: list[float] = []
    sending = threading.Event()
    sending.set()

    prober = requests.Session()  # kept alive, as a load balancer's probe is
    assert prober.get(f"{srv.base}/healthz", timeout=10).status_code == 200

    def watch() -> None:
        nonlocal peak_rss
        while sending.is_set():
            started = time.monotonic()
            assert prober.get(f"{srv.base}/healthz", timeout=10).status_code == 200
            health_seconds.append(time.monotonic() - started)
            peak_rss = max(peak_rss, api.memory_info().rss)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        body = b"[" + b"1," * (25 * MB) + b"1]"
        sock = send_head(
            srv,
            "/v1/templates",
            {"Content-Type": "application/json", "Content-Length": str(len(body))},
            body[:MB],
        )
        with sock:
            # The answer comes while 49 MB are still unsent: the body was never waited for.
            status, answer = read_answer(sock)
            assert (status, answer["error"]["code"]) == (401, "missing_api_key")  # type: ignore[index]
            with contextlib.suppress(OSError):  # the server hangs up, as it should
                sock.sendall(body[MB:])  # the rest, as an attacker would push it anyway
        time.sleep(0.5)
    finally:
        sending.clear()
        watcher.join()
    grown_mb = (max(peak_rss, api.memory_info().rss) - rss_before) / MB
    assert grown_mb < 20, f"the API grew {grown_mb:.0f} MB"
    assert len(health_seconds) >= 5
    # Reading the body on the loop stalled every probe for seconds; one probe slowed by a
    # busy test machine's scheduler is not that.
    slow = [seconds for seconds in health_seconds if seconds >= 0.1]
    assert len(slow) <= 1 and max(health_seconds) < 3, f"/healthz took {slow} s"


def test_upload_with_a_wrong_key_is_refused_before_it_is_read(fresh_server: Server) -> None:
    boundary = "hostile-boundary"
    part_head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    sock = send_head(
        fresh_server,
        "/api/v1/convert/text-to-pdf?async=true",
        {
            "X-API-Key": "dj_000000000000_" + "x" * 32,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(40 * MB),
        },
        part_head + b"a" * 65536,
    )
    with sock:
        status, answer = read_answer(sock)
    assert (status, answer["error"]["code"]) == (401, "invalid_api_key")  # type: ignore[index]


def test_json_routes_have_a_small_body_limit_and_uploads_a_large_one(
    fresh_server: Server,
) -> None:
    srv = fresh_server
    headers = {"X-API-Key": srv.key("limits")}
    padded = {"url": "https://example.com/hook", "description": "x" * (300 * 1024)}
    refused = requests.post(f"{srv.base}/v1/webhooks", headers=headers, json=padded, timeout=30)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"
    assert "256 KB" in refused.json()["error"]["message"]

    document = ("A line of text.\n" * (MB // 16)).encode()
    accepted = requests.post(
        f"{srv.base}/api/v1/convert/text-to-pdf?async=true",
        headers=headers,
        files={"file": ("one-mb.txt", document, "text/plain")},
        timeout=30,
    )
    assert accepted.status_code == 202, accepted.text
