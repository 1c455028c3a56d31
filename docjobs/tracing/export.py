"""The process's tracer provider: set up once, only when an OTLP endpoint is configured."""

from __future__ import annotations

import logging

from opentelemetry import trace

from docjobs.tracing.settings import TracingSettings

log = logging.getLogger(__name__)

_configured: list[object] = []
"""The provider this process set up, if any (a list: set once, read without a lock)."""


def configure(settings: TracingSettings, service: str) -> bool:
    """Export this process's spans as ``service`` (``docjobs-api``, ``docjobs-operator``,
    ``docjobs-runner``, ``docjobs-worker``) when an endpoint is configured; whether it
    does. The SDK is imported only then: an installation without tracing pays nothing."""
    endpoint = settings.endpoint()
    if endpoint is None or _configured:
        return bool(_configured)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    exporter = OTLPSpanExporter(
        endpoint=f"{endpoint}/v1/traces", timeout=settings.export_timeout_seconds
    )
    # Batched, on the SDK's own thread: no request or attempt waits for the collector.
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    trace.set_tracer_provider(provider)
    _configured.append(provider)
    log.info("tracing: spans of %s go to %s", service, endpoint)
    return True


def enabled() -> bool:
    """Whether this process records and exports spans."""
    return bool(_configured)


def flush(timeout_seconds: float = 5.0) -> None:
    """Send the spans still batched: before a one-shot process exits, after an attempt."""
    for provider in _configured:
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(int(timeout_seconds * 1000))
