"""the parse API's view of a job (``/v1`` and webhook payloads), shared by API and operator."""

from __future__ import annotations

from typing import Any

from docjobs.domain.clock import iso
from docjobs.domain.models import Job, Phase

PARSE_STATUS_WORDS = {
    Phase.PENDING: "pending",
    Phase.PROCESSING: "processing",
    Phase.RETRYING: "retrying",
    Phase.COMPLETE: "completed",
    Phase.FAILED: "failed",
    Phase.CANCELLED: "cancelled",
}
EVENT_OF_PHASE = {
    Phase.COMPLETE: "job.completed",
    Phase.FAILED: "job.failed",
    Phase.CANCELLED: "job.cancelled",
}


def job_view(job: Job, result: object = None) -> dict[str, Any]:
    spec, status = job.spec, job.status
    operation = spec.operation
    return {
        "jobId": spec.job_id,
        "status": PARSE_STATUS_WORDS[status.phase],
        "operation": operation.kind,
        "fileName": spec.input.file_name,
        "templateId": getattr(operation, "template_id", None),
        "result": result,
        "error": status.error.message if status.error and status.phase.terminal else None,
        "pageCount": status.page_count,
        "attempts": status.attempts,
        "createdAt": iso(spec.created_at),
        "startedAt": iso(status.started_at),
        "completedAt": iso(status.completed_at),
    }
