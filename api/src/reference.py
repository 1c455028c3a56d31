"""The API reference pages (``/docs``, ``/redoc``) under a Content-Security-Policy.

The pages load their scripts, styles and the OpenAPI document from this server only. The
Swagger UI page starts the UI with an inline script, which its policy allows by that
script's hash (taken from the page as sent, so a ``root_path`` in it changes nothing); no
other inline script runs. ReDoc styles its page with ``<style>`` elements it writes at run
time and indexes the document for search in a worker made from a ``blob:`` URL, which its
policy allows.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SWAGGER_UI_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})
REDOC_PATHS = frozenset({"/redoc"})
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
INLINE_STYLE = re.compile(rb"<style>(.*?)</style>", re.DOTALL)

COMMON_DIRECTIVES = (
    "default-src 'self'",
    "connect-src 'self'",  # the OpenAPI document; "try it out" calls the API itself
    "img-src 'self' data:",  # the style sheets' icons are data: URLs
    "font-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # for browsers that ignore frame-ancestors
    "Referrer-Policy": "no-referrer",
}


def _hashes(pattern: re.Pattern[bytes], html: bytes) -> str:
    digests = (hashlib.sha256(m.group(1)).digest() for m in pattern.finditer(html))
    return "".join(f" 'sha256-{base64.b64encode(d).decode()}'" for d in digests)


def swagger_ui_policy(html: bytes) -> str:
    """The policy of a Swagger UI page: its own inline scripts and styles, by hash."""
    return "; ".join(
        (
            *COMMON_DIRECTIVES,
            f"script-src 'self'{_hashes(INLINE_SCRIPT, html)}",
            f"style-src 'self'{_hashes(INLINE_STYLE, html)}",
        )
    )


def redoc_policy(html: bytes) -> str:
    """The policy of the ReDoc page: no inline script; styles it writes itself; a worker."""
    return "; ".join(
        (
            *COMMON_DIRECTIVES,
            f"script-src 'self'{_hashes(INLINE_SCRIPT, html)}",
            "style-src 'self' 'unsafe-inline'",
            "worker-src 'self' blob:",
        )
    )


class ReferencePolicyMiddleware:
    """Sends the reference pages with their Content-Security-Policy and the usual security
    headers; the pages are small, so each is held whole to hash its inline scripts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        root = scope.get("root_path", "")
        if root and path.startswith(root):  # behind a proxy that serves under a prefix
            path = path[len(root) :]
        if path in SWAGGER_UI_PATHS:
            policy = swagger_ui_policy
        elif path in REDOC_PATHS:
            policy = redoc_policy
        else:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def hold(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            headers = MutableHeaders(scope=start)
            if headers.get("content-type", "").startswith("text/html"):
                headers["Content-Security-Policy"] = policy(bytes(body))
                headers.update(SECURITY_HEADERS)
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body)})

        await self.app(scope, receive, hold)
