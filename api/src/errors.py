"""One error shape for every route: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from docjobs.backends.dependencies import RETRY_AFTER_SECONDS, DependencyUnavailable

log = logging.getLogger(__name__)

_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameters",
    429: "rate_limited",
    501: "not_implemented",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    status_code: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code, headers=headers)


_FORMATS_IN_WORDS = {"pages": "page numbers and ranges separated by commas, such as 1-3,5"}
"""What a field whose pattern did not match expects, instead of the raw pattern."""


def _validation_message(exc: RequestValidationError) -> str:
    return problems_in_words(exc.errors())


def problems_in_words(errors: Sequence[Any]) -> str:
    """Each refused field and why, in words: never a raw pattern."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        message = error.get("msg", "invalid")
        if error.get("type") == "string_pattern_mismatch":
            field = str(error.get("loc", ("",))[-1])
            message = f"expected {_FORMATS_IN_WORDS.get(field, 'another format')}"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"


def _is_missing_file(error: Any) -> bool:
    return bool(error.get("type") == "missing" and tuple(error.get("loc", ())) == ("body", "file"))


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path; Starlette's own 405 names only the first
    route's (``GET`` where ``GET`` and ``DELETE`` share a path)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _DEFAULT_CODES.get(exc.status_code, "error")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return error_response(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(DependencyUnavailable)
    async def _outage(request: Request, exc: DependencyUnavailable) -> JSONResponse:
        # Not a bug of ours: one line in the log, no traceback.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error_response(503, "dependency_unavailable", exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        if any(_is_missing_file(error) for error in exc.errors()):
            # The same mistake as on the routes that read the form themselves: the same answer.
            return error_response(400, "missing_file", "Send the document as a 'file' part.")
        # A ceiling that validation enforces is answered with its own code.
        types = {error.get("type") for error in exc.errors()}
        code = "pattern_too_complex" if "pattern_too_complex" in types else "invalid_parameters"
        return error_response(422, code, _validation_message(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; it has been logged")
