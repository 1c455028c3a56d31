"""The HTTP server: uvicorn, with every connection bounded in number and in time.

A client must send a request's head within ``server.header_timeout_seconds`` of connecting
(or of its first byte after a kept-alive answer) and each piece of a body within
``server.body_timeout_seconds``; a connection past either is closed. A connection past
``server.max_connections_per_client`` from one address is closed as it is accepted, before
any byte is read. At ``server.max_connections`` in all, the open connection that has waited
longest for a request head is closed to make room, and the new one only when none waits.
So idle or half-sent requests cost a bounded number of file descriptors and never crowd out
``/healthz``. Refused and timed-out connections are counted and logged as one summary line
per interval, whatever their rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol

from docjobs.config import ServerSettings

log = logging.getLogger(__name__)

SUMMARY_SECONDS = 10.0
"""Refused and timed-out connections are logged at most once per this many seconds."""
RESERVED_FILE_DESCRIPTORS = 256
"""File descriptors kept for everything but client connections: the database, stored
files, runner pipes, the log."""
INVALID_REQUEST_MESSAGE = "Invalid HTTP request received."
"""What uvicorn logs once per malformed request; counted into the summary instead."""


def raise_open_file_limit() -> int:
    """Raises this process's soft ``RLIMIT_NOFILE`` to its hard limit; the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # a sandbox that forbids it: keep the soft limit
            log.warning("cannot raise the open file limit above %d", soft)
    return soft


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int
    max_per_client: int

    @classmethod
    def from_settings(cls, settings: ServerSettings, open_files: int) -> ConnectionLimits:
        """``settings``' limits, the total lowered to what ``open_files`` descriptors allow."""
        room = max(open_files - RESERVED_FILE_DESCRIPTORS, 1)
        if settings.max_connections > room:
            log.warning(
                "DOCJOBS_SERVER__MAX_CONNECTIONS=%d is above what the open file limit (%d)"
                " allows: at most %d connections at once",
                settings.max_connections,
                open_files,
                room,
            )
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_connections=min(settings.max_connections, room),
            max_per_client=settings.max_connections_per_client,
        )


REASONS = {
    "total": "refused past DOCJOBS_SERVER__MAX_CONNECTIONS, none of those open idle",
    "evicted": "closed while idle to make room under DOCJOBS_SERVER__MAX_CONNECTIONS",
    "client": "refused past DOCJOBS_SERVER__MAX_CONNECTIONS_PER_CLIENT",
    "header": "closed after DOCJOBS_SERVER__HEADER_TIMEOUT_SECONDS without a whole request head",
    "body": "closed after DOCJOBS_SERVER__BODY_TIMEOUT_SECONDS without the next piece of a body",
    "invalid": "answered 400 for an invalid HTTP request",
}
"""What the summary line says of each kind of connection it counts."""


@dataclass
class ConnectionSummary:
    """Counts of refused and closed connections, logged as one line per interval."""

    interval: float = SUMMARY_SECONDS
    counts: Counter[str] = field(default_factory=Counter)
    clients: Counter[str] = field(default_factory=Counter)
    flush: asyncio.TimerHandle | None = None

    def note(self, reason: str, client: str | None) -> None:
        """Counts one connection in; raises ``RuntimeError`` off the server's event loop."""
        if self.flush is None:
            self.flush = asyncio.get_running_loop().call_later(self.interval, self.log)
        self.counts[reason] += 1
        if client is not None:
            self.clients[client] += 1

    def log(self) -> None:
        self.flush = None
        if not self.counts:
            return
        parts = [f"{n} {REASONS[reason]}" for reason, n in self.counts.most_common()]
        busiest = ", ".join(f"{client} ({n})" for client, n in self.clients.most_common(3))
        log.warning(
            "connections in the last %.0f s: %s%s",
            self.interval,
            "; ".join(parts),
            f"; most from {busiest}" if busiest else "",
        )
        self.counts.clear()
        self.clients.clear()


@dataclass
class ConnectionGuard:
    """What the connections of one server share: their limits, how many are open (in all
    and per client address), which of them wait for a request head (oldest first) and the
    summary of those refused or closed."""

    limits: ConnectionLimits
    summary: ConnectionSummary = field(default_factory=ConnectionSummary)
    open: int = 0
    per_client: Counter[str] = field(default_factory=Counter)
    waiting: dict[BoundedH11Protocol, None] = field(default_factory=dict)
    """Connections waiting for a request head (kept-alive ones included), in the order
    they began to wait."""

    def admit(self, client: str) -> str | None:
        """Counts a new connection from ``client`` in; the reason it is refused, if it is.

        Past the total ceiling, the connection that has waited longest for a request head
        is closed to make room: idle sockets, however many and from however many
        addresses, then crowd out one another and never a client that sends its request.
        """
        if self.per_client[client] >= self.limits.max_per_client:
            return "client"
        if self.open >= self.limits.max_connections:
            oldest = next(iter(self.waiting), None)
            if oldest is None:
                return "total"
            oldest.evict()
        self.open += 1
        self.per_client[client] += 1
        return None

    def release(self, client: str) -> None:
        self.open -= 1
        self.per_client[client] -= 1
        if self.per_client[client] <= 0:
            del self.per_client[client]


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the guard's ceilings and read timeouts.

    Subclassed per server by :func:`protocol_class`, which sets :attr:`guard`.
    """

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_address: str | None = None
        """Set once admitted; a refused connection never reaches uvicorn's protocol."""
        self.counted = False
        """Whether the guard counts this connection as open."""
        self.head_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        refused = self.guard.admit(client)
        if refused is not None:
            self.guard.summary.note(refused, client)
            transport.close()
            return
        self.client_address = client
        self.counted = True
        super().connection_made(transport)  # type: ignore[arg-type]
        self.arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client_address is None:  # refused
            return
        self.uncount()
        self.cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn's keep-alive timeout now bounds the wait for the next request's first
        # byte; a pipelined request already read has started its own cycle.
        self.cancel_timers()
        self.follow_request(after_response=True)

    def follow_request(self, after_response: bool = False) -> None:
        """Arms the timer of what the connection waits for from the client now."""
        if self.transport.is_closing():
            self.cancel_timers()
            return
        cycle = self.cycle
        state = self.conn.their_state
        if state is h11.IDLE and (cycle is None or cycle.response_complete):
            self.cancel_body_timer()
            self.guard.waiting[self] = None  # where it was if it already waited
            # A head's deadline runs from the connection or from the head's first byte,
            # never renewed. Before that byte, uvicorn's keep-alive timeout bounds the wait.
            if not after_response and self.head_timer is None:
                self.arm_head_timer()
            return
        self.cancel_timers()
        if state is h11.SEND_BODY:  # renewed by every piece that comes
            self.body_timer = self.loop.call_later(self.guard.limits.body_timeout, self.body_late)

    def arm_head_timer(self) -> None:
        self.head_timer = self.loop.call_later(self.guard.limits.header_timeout, self.head_late)
        self.guard.waiting[self] = None

    def head_late(self) -> None:
        self.head_timer = None
        self.give_up("header")

    def body_late(self) -> None:
        self.body_timer = None
        if self.flow.read_paused:  # the app has not taken what came: not the client's delay
            timeout = self.guard.limits.body_timeout
            self.body_timer = self.loop.call_later(timeout, self.body_late)
            return
        self.give_up("body")

    def evict(self) -> None:
        """Closes this connection, still waiting for a request head, to make room."""
        self.uncount()
        self.give_up("evicted")

    def give_up(self, reason: str) -> None:
        self.cancel_timers()
        self.guard.summary.note(reason, self.client_address)
        self.transport.close()

    def uncount(self) -> None:
        if self.counted and self.client_address is not None:
            self.counted = False
            self.guard.release(self.client_address)

    def cancel_body_timer(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def cancel_timers(self) -> None:
        self.cancel_body_timer()
        self.guard.waiting.pop(self, None)
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None


class InvalidRequestFilter(logging.Filter):
    """Counts uvicorn's line per malformed request into the summary instead of logging it."""

    def __init__(self, summary: ConnectionSummary) -> None:
        super().__init__()
        self.summary = summary

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() != INVALID_REQUEST_MESSAGE:
            return True
        try:
            self.summary.note("invalid", None)
        except RuntimeError:  # logged off the event loop: let the line through
            return True
        return False


def protocol_class(guard: ConnectionGuard) -> type[BoundedH11Protocol]:
    """The protocol class of one server, its connections sharing ``guard``."""
    return type("GuardedH11Protocol", (BoundedH11Protocol,), {"guard": guard})


def serve(app: Any, host: str, port: int, settings: ServerSettings) -> None:
    """Serves ``app`` on ``host``:``port`` until interrupted, within ``settings``' bounds."""
    open_files = raise_open_file_limit()
    guard = ConnectionGuard(ConnectionLimits.from_settings(settings, open_files))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        http=protocol_class(guard),
        ws="none",  # no route speaks WebSocket; an upgraded connection would leave the guard
    )
    # uvicorn sets its loggers up when its config is made: the filter goes on after that.
    logging.getLogger("uvicorn.error").addFilter(InvalidRequestFilter(guard.summary))
    # The port first, the app's start-up (recovery of the jobs left running) after: a server
    # that cannot serve must exit before it changes anything.
    listening = config.bind_socket()  # logs why and exits when the port is taken
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listening])
    if not server.started:  # the port is taken, or the app did not start
        raise SystemExit(STARTUP_FAILURE)
