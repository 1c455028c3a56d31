"""The attempt as a span of its job's trace (``docjobs-runner`` in pods, ``docjobs-worker``
in warm workers), when the job has a trace and tracing is configured."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.trace import StatusCode

from docjobs.config import Settings
from docjobs.domain.models import JobSpec, RunOutcome
from docjobs.tracing import configure, job_span


def start_tracing(settings: Settings, worker: bool) -> None:
    configure(settings.tracing, "docjobs-worker" if worker else "docjobs-runner")


def traced(
    spec: JobSpec, attempt: int, run: Callable[[], RunOutcome], step: str = "attempt"
) -> RunOutcome:
    """``run()``'s outcome; its time is the span ``step`` (an attempt, a part, a merge)."""
    attributes: dict[str, str | int] = {
        "docjobs.job_id": spec.job_id,
        "docjobs.operation": spec.operation.kind,
        "docjobs.attempt": attempt,
    }
    with job_span(step, spec.traceparent, attributes) as span:
        outcome = run()
        span.set_attribute("docjobs.exit_code", outcome.exit_code)
        error = outcome.summary.error
        if error is not None:
            span.set_status(StatusCode.ERROR, error.reason)
    return outcome
