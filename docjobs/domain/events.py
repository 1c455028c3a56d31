"""the parse API's view of a job (``/v1`` and webhook payloads), shared by API and operator."""

from __future__ import annotations

from typing import Any

from docjobs.domain.clock import iso
from docjobs.domain.models import Job, Phase
from docjobs.domain.pages import InvalidPageSelection, validate_pages

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


def pages_read(job: Job) -> int | None:
    """The pages the job reads, the same in every view and at every phase: the count its
    runner reported, else the pages its ``pages`` parameter selects of the upload's."""
    if job.status.page_count is not None:
        return job.status.page_count
    total = job.spec.input.page_count
    pages = getattr(job.spec.operation, "pages", None)
    if total is None or not pages:
        return total
    try:
        return len(validate_pages(pages, total))
    except InvalidPageSelection:  # refused at submission; a job made past the API reads whole
        return total


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
        "errorCode": status.error.code if status.error and status.phase.terminal else None,
        "pageCount": pages_read(job),
        "attempts": status.attempts,
        "createdAt": iso(spec.created_at),
        "startedAt": iso(status.started_at),
        "completedAt": iso(status.completed_at),
    }
