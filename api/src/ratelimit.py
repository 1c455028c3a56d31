"""Per-tenant rate limits by plan (moving window), with the usual headers on every answer.

Counts live in the process (``memory://``) or in Redis, shared by every API replica. A
request with a body is counted by the key gate when its route first asks for the body,
before any of it is read, so a tenant over its rate is refused without sending its upload;
other requests are counted by their route's dependency.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from enum import Enum
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docjobs.auth.keys import Principal

from .deps import PrincipalDep, SettingsDep
from .errors import ApiError

log = logging.getLogger(__name__)


MANAGEMENT = "management"
"""The counts of template and webhook-endpoint requests, apart from those of processing."""
COUNTED_SCOPE_KEY = "docjobs.rate_counted"
"""Set in a request's scope once it has been counted, so that it is counted once."""


class Rate(Enum):
    """Which rate a route's requests count against."""

    PLAN = "plan"
    MANAGEMENT = "management"


class RateLimiter:
    def __init__(
        self,
        plans: dict[str, str],
        storage_uri: str = "memory://",
        management: str = "120/minute",
    ) -> None:
        self.items: dict[str, RateLimitItem] = {plan: parse(rate) for plan, rate in plans.items()}
        # A key whose plan has since left the settings gets the strictest plan's rate.
        self.fallback = min(self.items.values(), key=lambda item: item.amount / item.get_expiry())
        self.management = parse(management)
        storage = storage_from_string(storage_uri)
        self.local = isinstance(storage, MemoryStorage)
        """Counts in this process: a hit costs no I/O and may run on the event loop."""
        self.limiter = MovingWindowRateLimiter(storage)

    def hit(self, plan: str, tenant: str) -> dict[str, str]:
        """A processing request of ``tenant``, at its plan's rate."""
        return self._hit(self.items.get(plan) or self.fallback, f"plan {plan!r}", tenant)

    def hit_management(self, tenant: str) -> dict[str, str]:
        """A template or webhook-endpoint request of ``tenant``."""
        return self._hit(self.management, "template and webhook requests", MANAGEMENT, tenant)

    def _hit(self, item: RateLimitItem, what: str, *identifiers: str) -> dict[str, str]:
        """The rate-limit headers of an allowed request; 429 (with them) for one over."""
        try:
            allowed = self.limiter.hit(item, *identifiers)
            stats = self.limiter.get_window_stats(item, *identifiers)
        except Exception:  # the shared store (Redis) is down: refuse clearly, not with a 500
            log.warning("rate limit storage unreachable", exc_info=True)
            raise ApiError(
                503,
                "rate_limit_unavailable",
                "Rate limits cannot be checked right now; retry shortly.",
                headers={"Retry-After": "5"},
            ) from None
        reset_in = max(0, math.ceil(stats.reset_time - time.time()))
        headers = {
            "X-RateLimit-Limit": str(item.amount),
            "X-RateLimit-Remaining": str(stats.remaining),
            "X-RateLimit-Reset": str(math.ceil(stats.reset_time)),
        }
        if not allowed:
            raise ApiError(
                429,
                "rate_limited",
                f"Rate limit of {item.amount} requests per {item.GRANULARITY.name} exceeded for "
                f"{what}; retry in {reset_in} s.",
                headers={**headers, "Retry-After": str(max(reset_in, 1))},
            )
        return headers


async def rate_limited(request: Request, principal: PrincipalDep, settings: SettingsDep) -> None:
    """Processing routes: the tenant's plan's rate."""
    if settings.rate_limits.enabled and not request.scope.get(COUNTED_SCOPE_KEY):
        await count(request.scope, request.app.state.rate_limiter, Rate.PLAN, principal)


async def management_rate_limited(
    request: Request, principal: PrincipalDep, settings: SettingsDep
) -> None:
    """Template and webhook-endpoint routes: ``rate_limits.management`` per tenant."""
    if settings.rate_limits.enabled and not request.scope.get(COUNTED_SCOPE_KEY):
        await count(request.scope, request.app.state.rate_limiter, Rate.MANAGEMENT, principal)


_RATE_OF_DEPENDENCY: dict[Any, Rate] = {
    rate_limited: Rate.PLAN,
    management_rate_limited: Rate.MANAGEMENT,
}


async def count(scope: Scope, limiter: RateLimiter, rate: Rate, principal: Principal) -> None:
    """Counts the request of ``scope`` against ``rate``; raises 429 (or 503) when it is over."""

    def hit() -> dict[str, str]:
        if rate is Rate.PLAN:
            return limiter.hit(principal.plan, principal.tenant)
        return limiter.hit_management(principal.tenant)

    # Redis is a network round trip: off the event loop.
    headers = hit() if limiter.local else await asyncio.to_thread(hit)
    scope[COUNTED_SCOPE_KEY] = True
    scope.setdefault("state", {})["rate_limit_headers"] = headers


def rate_of_route(route: object) -> Rate | None:
    """The rate the requests of ``route`` (a request scope's ``route``) count against; None
    for a route without a rate or one the scope does not name."""
    dependant = getattr(route, "dependant", None)
    return _rate_in(dependant) if isinstance(dependant, Dependant) else None


def _rate_in(dependant: Dependant) -> Rate | None:
    for sub in dependant.dependencies:
        rate = _RATE_OF_DEPENDENCY.get(sub.call) or _rate_in(sub)
        if rate is not None:
            return rate
    return None


class RateLimitHeadersMiddleware:
    """Adds the X-RateLimit-* headers of the request's own hit to its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            found = scope.get("state", {}).get("rate_limit_headers")
            if message["type"] == "http.response.start" and found:
                headers = MutableHeaders(scope=message)
                for name, value in found.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
