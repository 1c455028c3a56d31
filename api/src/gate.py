"""Authentication before the body: a request that carries a body is refused for a missing or
bad key, or for a tenant over its rate, while only its headers have been read, so an
anonymous or rate-limited caller costs the server the bytes of its headers, never those of
its upload.

The key is checked as the request comes in. The rate is counted when the route first asks
for the body: only then is the route known, and with it the rate it counts against.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docjobs.auth.cache import VerifiedKeyCache
from docjobs.backends.base import Backend
from docjobs.config import RateLimitSettings

from .deps import PRINCIPAL_SCOPE_KEY, authenticate
from .errors import ApiError, error_body
from .ratelimit import COUNTED_SCOPE_KEY, RateLimiter, count, rate_of_route

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

DIRECT_UPLOAD_PATH = "/api/v1/uploads/"
"""Under it, the signed PUT of a direct upload: no API key (the URL's signature stands for
it), and its own size limit, which the route keeps while the body streams."""


class ApiKeyGateMiddleware:
    """Checks ``X-API-Key`` of every body-carrying request, and counts it against its
    route's rate, before the app reads the body.

    The principal it finds is kept in the request's scope, where the routes' key dependency
    takes it instead of checking the key a second time; the rate-limit dependencies see the
    request counted and do not count it again.
    """

    def __init__(
        self,
        app: ASGIApp,
        backend: Backend,
        verified: VerifiedKeyCache,
        limiter: RateLimiter,
        rate_limits: RateLimitSettings,
    ) -> None:
        self.app = app
        self.backend = backend
        self.verified = verified
        self.limiter = limiter
        self.rate_limits = rate_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "PUT" and scope["path"].startswith(DIRECT_UPLOAD_PATH):
            await self.app(scope, receive, send)  # its URL's signature is its key
            return
        raw_key = dict(scope["headers"]).get(b"x-api-key")
        try:
            principal = await authenticate(
                self.backend,
                self.verified,
                raw_key.decode("latin-1") if raw_key is not None else None,
            )
        except ApiError as exc:
            await refuse(send, exc.status_code, exc.code, exc.message, exc.headers)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        if not self.rate_limits.enabled:
            await self.app(scope, receive, send)
            return
        asked = False
        refusal: ApiError | None = None

        async def counting_receive() -> Message:
            nonlocal asked, refusal
            if not asked:
                asked = True
                rate = rate_of_route(scope.get("route"))
                if rate is not None and not scope.get(COUNTED_SCOPE_KEY):
                    try:
                        await count(scope, self.limiter, rate, principal)
                    except ApiError as exc:
                        refusal = exc
            if refusal is not None:  # the route stops reading; its answer is dropped
                return {"type": "http.disconnect"}
            return await receive()

        async def guarded_send(message: Message) -> None:
            if refusal is None:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if refusal is None:
                raise
        if refusal is not None:
            await refuse(send, refusal.status_code, refusal.code, refusal.message, refusal.headers)


async def refuse(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    """Answers without reading the body; ``Connection: close`` so the server drops the unread
    rest rather than draining it to reuse the connection."""
    # Byte for byte as JSONResponse renders every other error.
    body = json.dumps(error_body(code, message), ensure_ascii=False, separators=(",", ":")).encode()
    extra = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
