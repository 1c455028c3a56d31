"""The ``tracing`` settings section (``DOCJOBS_TRACING__*``)."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

ENDPOINT_ENV = "DOCJOBS_TRACING__OTLP_ENDPOINT"
"""The variable that sets :attr:`TracingSettings.otlp_endpoint` (runner pods get it)."""


class TracingSettings(BaseModel):
    otlp_endpoint: str | None = None
    """URL; unset. Base URL of an OTLP/HTTP collector (``http://collector:4318``): spans go
    to its ``/v1/traces``. Unset, the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` is read;
    neither set, nothing is exported and no span is recorded (a client's ``traceparent``
    is still kept with its job and sent on its webhooks)."""
    export_timeout_seconds: float = Field(default=5.0, gt=0)
    """Seconds; 5. Longest one export may take; a collector that does not answer loses
    those spans, never a job's time."""

    def endpoint(self) -> str | None:
        """Where spans go, if anywhere: this section's endpoint, else the standard one."""
        found = self.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return found.rstrip("/") if found else None
