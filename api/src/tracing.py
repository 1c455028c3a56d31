"""A span per request, in the trace the client's ``traceparent`` names (or a new one).

The request's context is the current one while the app handles it, so a job submitted by
the request keeps it (:func:`docjobs.tracing.current_traceparent`). With tracing off the
client's context (or a minted, unsampled one) is made current all the same, as a span that
records nothing: the job and its webhooks still carry one trace id.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docjobs.tracing import context_of, enabled, mint_traceparent, tracer

UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes: frequent, and of no job."""


class TraceRequestsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = tracer("docjobs.api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED:
            await self.app(scope, receive, send)
            return
        sent = _header(scope, b"traceparent")
        parent = context_of(sent)
        if not trace.get_current_span(parent).get_span_context().is_valid:
            # No (valid) context from the client: a new trace, also when nothing records.
            parent = context_of(None if enabled() else mint_traceparent())
        method = scope["method"]
        status: list[int] = []

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        with self.tracer.start_as_current_span(
            method, context=parent, kind=SpanKind.SERVER, attributes={"url.path": scope["path"]}
        ) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                if status:
                    span.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        span.set_status(StatusCode.ERROR)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None
