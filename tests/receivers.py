"""Local HTTP servers the tests talk to: a webhook receiver and a stand-in for Claude."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Recorded:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LocalServer:
    """Answers POSTs with ``replies`` in turn (the last one repeats) and records them."""

    replies: list[Reply] = field(default_factory=lambda: [(200, {}, b"{}")])
    received: list[Recorded] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 60) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"got {len(self.received)} of {count} requests"
            time.sleep(0.05)
        return self.received


@contextmanager
def serve(replies: list[Reply] | Callable[[Recorded], Reply]) -> Iterator[LocalServer]:
    state = LocalServer(replies if isinstance(replies, list) else [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {name.lower(): value for name, value in self.headers.items()}
            record = Recorded(time.time(), self.path, headers, body)
            state.received.append(record)
            if callable(replies):
                status, headers, payload = replies(record)
            else:
                status, headers, payload = state.replies[
                    min(len(state.received), len(state.replies)) - 1
                ]
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def claude_tool_answer(values: dict[str, Any], tool_name: str = "record_fields") -> bytes:
    """A Messages API answer in which the model calls the extraction tool."""
    return json.dumps(
        {
            "id": "msg_standin",
            "type": "message",
            "role": "assistant",
            "model": "claude-standin",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": tool_name, "input": values}],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 10},
        }
    ).encode()


def claude_overloaded() -> bytes:
    return json.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    ).encode()


@contextmanager
def fetch_listener() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that answers every GET with 404: its base URL, and the paths asked
    of it (what a document's linked content would fetch)."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
