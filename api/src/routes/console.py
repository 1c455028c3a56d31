"""``/console``: the web console, static files whose scripts speak to this API.

Loading the page takes no key: the user types the key into it, the tab keeps it in its
session storage and the page's own requests send it as ``X-API-Key``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from ..errors import error_response

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
"""Package data: ``index.html`` with its script and style sheet."""

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",  # the forms are sent by the script, never by the browser
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # for browsers that ignore frame-ancestors
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidated (ETag): an upgrade's console shows at once
}
READ_METHODS = ("GET", "HEAD")


class ConsoleFiles(StaticFiles):
    """The console's files, each answered with the security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] not in READ_METHODS:
            return error_response(
                405,
                "method_not_allowed",
                "The console's files are only read.",
                {"Allow": ", ".join(READ_METHODS)},
            )
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


async def console_root() -> RedirectResponse:
    # Relative, so that it holds behind a proxy that serves the API under a path prefix.
    return RedirectResponse("console/", status_code=307)


async def service_root() -> RedirectResponse:
    # A person who opens the server's address in a browser wants the console; API clients
    # never request the root.
    return RedirectResponse("console/", status_code=307)


def install(app: FastAPI) -> None:
    app.add_api_route("/", service_root, methods=list(READ_METHODS), include_in_schema=False)
    app.add_api_route("/console", console_root, methods=list(READ_METHODS), include_in_schema=False)
    app.mount("/console", ConsoleFiles(directory=CONSOLE_DIR, html=True), name="console")
