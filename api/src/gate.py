"""Authentication before the body: a request that carries a body is refused for a missing or
bad key while only its headers have been read, so an anonymous caller costs the server the
bytes of its headers, never those of its upload."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from docjobs.auth.cache import VerifiedKeyCache
from docjobs.backends.base import Backend

from .deps import PRINCIPAL_SCOPE_KEY, authenticate
from .errors import ApiError, error_body

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ApiKeyGateMiddleware:
    """Checks ``X-API-Key`` of every body-carrying request before the app reads the body.

    The principal it finds is kept in the request's scope, where the routes' key dependency
    takes it instead of checking the key a second time.
    """

    def __init__(self, app: ASGIApp, backend: Backend, verified: VerifiedKeyCache) -> None:
        self.app = app
        self.backend = backend
        self.verified = verified

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        raw_key = dict(scope["headers"]).get(b"x-api-key")
        try:
            principal = await authenticate(
                self.backend,
                self.verified,
                raw_key.decode("latin-1") if raw_key is not None else None,
            )
        except ApiError as exc:
            await refuse(send, exc.status_code, exc.code, exc.message)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.app(scope, receive, send)


async def refuse(send: Send, status: int, code: str, message: str) -> None:
    """Answers without reading the body; ``Connection: close`` so the server drops the unread
    rest rather than draining it to reuse the connection."""
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
