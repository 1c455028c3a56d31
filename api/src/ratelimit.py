"""Per-tenant rate limits by plan (moving window), with the usual headers on every answer."""

from __future__ import annotations

import math
import time

from fastapi import Request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .deps import PrincipalDep, SettingsDep
from .errors import ApiError


class RateLimiter:
    def __init__(self, plans: dict[str, str]) -> None:
        self.items: dict[str, RateLimitItem] = {plan: parse(rate) for plan, rate in plans.items()}
        # A key whose plan has since left the settings gets the strictest plan's rate.
        self.fallback = min(self.items.values(), key=lambda item: item.amount / item.get_expiry())
        # One process keeps its own counts; replicas each allow the plan's rate.
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, plan: str, tenant: str) -> dict[str, str]:
        item = self.items.get(plan) or self.fallback
        allowed = self.limiter.hit(item, tenant)
        stats = self.limiter.get_window_stats(item, tenant)
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
                f"plan {plan!r}; retry in {reset_in} s.",
                headers={**headers, "Retry-After": str(max(reset_in, 1))},
            )
        return headers


async def rate_limited(request: Request, principal: PrincipalDep, settings: SettingsDep) -> None:
    if not settings.rate_limits.enabled:
        return
    limiter: RateLimiter = request.app.state.rate_limiter
    request.state.rate_limit_headers = limiter.hit(principal.plan, principal.tenant)


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
