"""Request metrics, labelled by route template (never by raw path: ids would explode them)."""

from __future__ import annotations

import functools
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "docjobs_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "docjobs_http_request_duration_seconds", "Time to answer HTTP requests.", ["method", "route"]
)


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            answered, timed = _series(scope["method"], route, status)
            answered.inc()
            timed.observe(time.perf_counter() - started)


@functools.cache
def _series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """The labelled series of one kind of request, found once (``labels`` takes a lock and
    builds its key on every call). Bounded: methods x route templates x status codes."""
    return REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)
