"""the jobs API's response shapes (``/api/v1``)."""

from __future__ import annotations

from typing import Any

from docjobs.domain.clock import iso
from docjobs.domain.models import Job, Phase

STATUS_WORDS = {
    Phase.PENDING: "pending",
    Phase.PROCESSING: "processing",
    Phase.RETRYING: "processing",
    Phase.COMPLETE: "complete",
    Phase.FAILED: "failed",
    Phase.CANCELLED: "cancelled",
}
PHASES_OF_WORD: dict[str, tuple[Phase, ...]] = {
    "pending": (Phase.PENDING,),
    "processing": (Phase.PROCESSING, Phase.RETRYING),
    "complete": (Phase.COMPLETE,),
    "failed": (Phase.FAILED,),
    "cancelled": (Phase.CANCELLED,),
}


def job_urls(base_url: str, job_id: str) -> dict[str, str]:
    status_url = f"{base_url.rstrip('/')}/api/v1/jobs/{job_id}"
    return {"status_url": status_url, "result_url": f"{status_url}/result"}


def accepted(job: Job, base_url: str, message: str = "Job queued for processing") -> dict[str, Any]:
    return {
        "job_id": job.spec.job_id,
        "status": STATUS_WORDS[job.status.phase],
        "message": message,
        **job_urls(base_url, job.spec.job_id),
    }


def job_summary(job: Job) -> dict[str, Any]:
    status = job.status
    return {
        "job_id": job.spec.job_id,
        "status": STATUS_WORDS[status.phase],
        "operation": job.spec.operation.kind,
        "created_at": iso(job.spec.created_at),
        "completed_at": iso(status.completed_at),
    }


def job_detail(job: Job, base_url: str) -> dict[str, Any]:
    status = job.status
    body = job_summary(job)
    body.update(
        started_at=iso(status.started_at),
        attempts=status.attempts,
        page_count=status.page_count
        if status.page_count is not None
        else job.spec.input.page_count,
        file_name=job.spec.input.file_name,
        message=status.message,
        result_url=job_urls(base_url, job.spec.job_id)["result_url"],
    )
    if status.phase is Phase.RETRYING:
        body["next_attempt_at"] = iso(status.next_attempt_at)
    if status.error is not None:
        body["error"] = {"code": status.error.reason, "message": status.error.message}
    return body
