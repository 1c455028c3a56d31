"""Spans of a job's trace, made by the processes that work on the job after its request."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from docjobs.tracing.context import context_of, tracer

Attributes = Mapping[str, AttributeValue]


def record_span(
    name: str,
    traceparent: str | None,
    started: datetime,
    attributes: Attributes | None = None,
    ended: datetime | None = None,
) -> None:
    """A span that already happened (``started`` to ``ended``, now by default), such as a
    job's wait in the queue; nothing when the job has no trace or nothing records."""
    if traceparent is None:
        return
    span = tracer("docjobs.jobs").start_span(
        name,
        context=context_of(traceparent),
        start_time=_nanoseconds(started),
        attributes=attributes,
    )
    span.end(end_time=None if ended is None else _nanoseconds(ended))


@contextmanager
def job_span(
    name: str, traceparent: str | None, attributes: Attributes | None = None
) -> Iterator[Span]:
    """A span of the job's trace around the block, current while it runs."""
    with tracer("docjobs.jobs").start_as_current_span(
        name, context=context_of(traceparent), kind=SpanKind.INTERNAL, attributes=attributes
    ) as span:
        yield span


def _nanoseconds(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)
