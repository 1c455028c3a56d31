"""Connections are bounded: a real ``docjobs serve`` under more idle, half-sent requests
from several loopback addresses than its connection ceiling still answers ``/healthz`` at
once (the oldest idle sockets make room), closes each silent socket after the header
timeout, closes a client's connections past its ceiling as they come, logs all that in a
few summary lines, and serves normal requests after."""

from __future__ import annotations

import re
import resource
import selectors
import socket
import statistics
import time
from collections.abc import Iterator

import pytest
import requests

from docjobs.api.server import SUMMARY_SECONDS
from tests.conftest import Server

HEADER_TIMEOUT = 8.0
BODY_TIMEOUT = 3.0
GRACE = 6.0
"""Seconds a loaded machine may take past a timeout to close a socket."""
PER_CLIENT = 300
MAX_CONNECTIONS = 2500
IDLE_SOCKETS = 3000
HEALTH_CHECKS = 30
IDLE_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 14)]
"""Loopback addresses the idle sockets come from, 250 each: under the per-client ceiling."""
HALF_SENT = b"GET /healthz HTTP/1.1\r\nHost: docjobs\r\nX-Slow: "


@pytest.fixture(scope="module", autouse=True)
def open_file_limit() -> Iterator[None]:
    """This process holds thousands of sockets too: its soft limit goes up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < IDLE_SOCKETS + PER_CLIENT + 1000:
        pytest.skip(f"the open file limit ({hard}) is too low for {IDLE_SOCKETS} sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("connections") / "data",
        env={
            "DOCJOBS_SERVER__HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "DOCJOBS_SERVER__BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "DOCJOBS_SERVER__MAX_CONNECTIONS": str(MAX_CONNECTIONS),
            "DOCJOBS_SERVER__MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT),
            "DOCJOBS_RUNNER__CONCURRENCY": "1",
        },
    ).start()
    yield srv
    srv.stop()


def connect(server: Server, source: str, first_bytes: bytes = b"") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(30)
    sock.connect(("127.0.0.1", server.port))
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def wait_closed(socks: list[socket.socket], deadline: float) -> dict[socket.socket, float]:
    """When the server closed each of ``socks`` that it closed before ``deadline``."""
    closed: dict[socket.socket, float] = {}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while len(closed) < len(socks) and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if closed_by_server(sock):
                    closed[sock] = time.monotonic()
                    selector.unregister(sock)
    return closed


def log_once_it_says(server: Server, setting: str) -> str:
    """The server's log once a summary line names ``setting`` (it comes within an interval)."""
    assert server.log_path is not None
    deadline = time.monotonic() + SUMMARY_SECONDS + GRACE
    while setting not in (log := server.log_path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return log


def healthz_seconds(server: Server, times: int) -> list[float]:
    """How long each of ``times`` fresh connections took to get ``/healthz`` answered."""
    took = []
    for _ in range(times):
        start = time.monotonic()
        answer = requests.get(f"{server.base}/healthz", timeout=10)
        took.append(time.monotonic() - start)
        assert answer.status_code == 200, answer.text
    return took


def test_healthz_answers_under_more_half_sent_requests_than_the_ceiling(
    server: Server,
) -> None:
    idle: list[socket.socket] = []
    opened: dict[socket.socket, float] = {}
    # Each connection past the ceiling closes the longest idle one: a probe's too, at most
    # one each, since a probe leaves room behind when it is done.
    past_the_ceiling = IDLE_SOCKETS - MAX_CONNECTIONS
    try:
        for n in range(IDLE_SOCKETS):
            sock = connect(server, IDLE_ADDRESSES[n % len(IDLE_ADDRESSES)], HALF_SENT)
            idle.append(sock)
            opened[sock] = time.monotonic()
        assert time.monotonic() - opened[idle[0]] < HEADER_TIMEOUT / 2, "opening took too long"

        took = healthz_seconds(server, HEALTH_CHECKS)
        # A probe held up among the idle sockets would wait for the header timeout.
        assert statistics.median(took) < HEADER_TIMEOUT / 8, took

        # The oldest made room at once; the rest stay open until the header timeout.
        last = past_the_ceiling + HEALTH_CHECKS
        made_room = wait_closed(idle, opened[idle[last]] + HEADER_TIMEOUT - 1)
        evicted = len(made_room)
        assert past_the_ceiling <= evicted <= last, evicted
        assert set(made_room) == set(idle[:evicted]), "not the oldest made room"
        held = idle[evicted:]
        closed = wait_closed(held, opened[held[-1]] + HEADER_TIMEOUT + GRACE)
        assert len(closed) == len(held), f"{len(held) - len(closed)} never closed"
        early = [s for s, at in closed.items() if at - opened[s] < HEADER_TIMEOUT - 0.5]
        assert not early, f"{len(early)} closed before the header timeout"
    finally:
        for sock in idle:
            sock.close()

    # Thousands of closed connections: a summary line per interval, not a line each.
    counts = {
        "evicted": re.compile(r"(\d+) closed while idle to make room under DOCJOBS_SERVER__MAX_C"),
        "timed out": re.compile(r"(\d+) closed after DOCJOBS_SERVER__HEADER_TIMEOUT_SECONDS"),
    }
    expected = {"evicted": evicted, "timed out": len(held)}
    assert server.log_path is not None
    deadline = time.monotonic() + 2 * SUMMARY_SECONDS + GRACE
    while True:
        log = server.log_path.read_text()
        summaries = [line for line in log.splitlines() if "connections in the last" in line]
        found = {
            what: sum(int(n) for line in summaries for n in pattern.findall(line))
            for what, pattern in counts.items()
        }
        if found == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found == expected, summaries
    assert len(summaries) <= 3, summaries
    assert len(log.encode()) < 64 * 1024, f"{len(log.encode())} bytes of log"


def test_connections_past_the_per_client_ceiling_are_closed_at_once(server: Server) -> None:
    extra = 40
    socks: list[socket.socket] = []
    try:
        for _ in range(PER_CLIENT + extra):
            socks.append(connect(server, "127.0.0.50"))
        closed = wait_closed(socks, time.monotonic() + 3)
        assert len(closed) == extra, f"{len(closed)} of {len(socks)} closed"
        # The server accepts in arrival order: the last ones are those past the ceiling.
        assert set(closed) == set(socks[PER_CLIENT:])
        # Another address is served meanwhile.
        other = requests.Session()
        other.mount("http://", _SourceAddressAdapter("127.0.0.51"))
        assert other.get(f"{server.base}/healthz", timeout=10).status_code == 200
        # A connection held under the ceiling is a working one.
        held = socks[0]
        held.sendall(b"GET /healthz HTTP/1.1\r\nHost: docjobs\r\nConnection: close\r\n\r\n")
        assert held.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        for sock in socks:
            sock.close()
    log = log_once_it_says(server, "DOCJOBS_SERVER__MAX_CONNECTIONS_PER_CLIENT")
    assert f"{extra} refused past DOCJOBS_SERVER__MAX_CONNECTIONS_PER_CLIENT" in log
    # Once they are gone, the address gets connections again.
    time.sleep(0.5)
    again = connect(server, "127.0.0.50")
    try:
        again.sendall(b"GET /healthz HTTP/1.1\r\nHost: docjobs\r\nConnection: close\r\n\r\n")
        assert again.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        again.close()


def test_a_body_that_stops_coming_is_timed_out(server: Server) -> None:
    key = server.key("slow-body")
    head = (
        "POST /api/v1/convert/text-to-pdf HTTP/1.1\r\nHost: docjobs\r\n"
        f"X-API-Key: {key}\r\nContent-Type: multipart/form-data; boundary=cut\r\n"
        "Content-Length: 100000\r\n\r\n"
        '--cut\r\nContent-Disposition: form-data; name="content"\r\n\r\n'
    )
    sock = connect(server, "127.0.0.60", head.encode() + b"x" * 1000)
    try:
        sent = time.monotonic()
        closed = wait_closed([sock], sent + BODY_TIMEOUT + GRACE)
        assert sock in closed, "a stalled body was never timed out"
        assert closed[sock] - sent >= BODY_TIMEOUT - 0.5
    finally:
        sock.close()
    log = log_once_it_says(server, "DOCJOBS_SERVER__BODY_TIMEOUT_SECONDS")
    assert "1 closed after DOCJOBS_SERVER__BODY_TIMEOUT_SECONDS" in log


def test_normal_requests_are_served_as_before(server: Server) -> None:
    key = server.key("after")
    converted = requests.post(
        f"{server.base}/api/v1/convert/text-to-pdf",
        headers={"X-API-Key": key},
        data={"content": "still serving"},
        timeout=120,
    )
    assert converted.status_code == 200, converted.text
    assert converted.content.startswith(b"%PDF")


class _SourceAddressAdapter(requests.adapters.HTTPAdapter):
    """Connections from one local address."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
