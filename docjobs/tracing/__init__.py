"""One trace per job: W3C trace context carried with the job, spans exported over OTLP.

The API starts (or continues, from the client's ``traceparent``) a trace per request; the
job keeps that request's context as a ``traceparent`` string in its spec, so the processes
that work on it later (the embedded supervisor or the operator, the runner, the webhook
deliveries) add their spans to the same trace. Nothing is exported, and no SDK is set up,
unless :class:`TracingSettings` names an OTLP endpoint.
"""

from docjobs.tracing.context import (
    context_of,
    current_traceparent,
    mint_traceparent,
    trace_id_of,
    traceparent_of,
    tracer,
)
from docjobs.tracing.export import configure, enabled, flush
from docjobs.tracing.settings import ENDPOINT_ENV, TracingSettings
from docjobs.tracing.spans import job_span, record_span

__all__ = [
    "ENDPOINT_ENV",
    "TracingSettings",
    "configure",
    "context_of",
    "current_traceparent",
    "enabled",
    "flush",
    "job_span",
    "mint_traceparent",
    "record_span",
    "trace_id_of",
    "traceparent_of",
    "tracer",
]
