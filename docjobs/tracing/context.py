"""Trace context as a job carries it: a W3C ``traceparent`` string."""

from __future__ import annotations

import secrets

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


def tracer(name: str) -> trace.Tracer:
    """A tracer of the process's provider: a no-op one unless :func:`configure` set one up."""
    return trace.get_tracer(name)


def context_of(traceparent: str | None) -> Context:
    """A context whose span is the one ``traceparent`` names (an empty one for None or a
    malformed value: spans started in it begin a new trace)."""
    if not traceparent:
        return Context()
    return _PROPAGATOR.extract({"traceparent": traceparent})


def traceparent_of(span: Span) -> str | None:
    """``span``'s context as a ``traceparent`` value; None for a span with no valid context."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent")


def current_traceparent() -> str | None:
    """The current span's context as a ``traceparent`` value, if there is one."""
    return traceparent_of(trace.get_current_span())


def mint_traceparent() -> str:
    """A new trace, unsampled: what the API keeps with a job when no client sent one and
    nothing records spans, so the job and its webhooks still share an id."""
    context = SpanContext(
        trace_id=int.from_bytes(secrets.token_bytes(16)) or 1,
        span_id=int.from_bytes(secrets.token_bytes(8)) or 1,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    found = traceparent_of(trace.NonRecordingSpan(context))
    assert found is not None
    return found


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32 hex digits of the trace id a ``traceparent`` value names, if it is valid."""
    span = trace.get_current_span(context_of(traceparent))
    found = span.get_span_context()
    return f"{found.trace_id:032x}" if found.is_valid else None
