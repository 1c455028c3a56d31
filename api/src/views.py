"""Response bodies (``schemas``) built from jobs, templates and webhook endpoints."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from docjobs.domain.clock import iso
from docjobs.domain.events import job_view, pages_read
from docjobs.domain.models import Job, Phase
from docjobs.templates.store import Template
from docjobs.webhooks.records import DeliveryRecord, WebhookEndpoint
from docjobs.webhooks.replay import delivery_id

from .schemas import (
    DeliveryAttemptView,
    DeliveryView,
    JobAccepted,
    JobDetail,
    JobFailure,
    JobListEntry,
    JobProgress,
    JobSummary,
    OcrConfidence,
    ParseJob,
    ParseJobProgress,
    SearchableTextLayer,
    TemplateView,
    WebhookEndpointView,
)

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


def json_response(body: BaseModel, status_code: int = 200) -> JSONResponse:
    """For routes that choose their status code: the body as its route documents it."""
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code)


# --- the jobs API --------------------------------------------------------------------------


def status_url(base_url: str, job_id: str) -> str:
    return f"{base_url.rstrip('/')}/api/v1/jobs/{job_id}"


def result_url(base_url: str, job_id: str) -> str:
    return f"{status_url(base_url, job_id)}/result"


def accepted(job: Job, base_url: str, message: str = "Job queued for processing") -> JobAccepted:
    job_id = job.spec.job_id
    return JobAccepted(
        job_id=job_id,
        status=STATUS_WORDS[job.status.phase],
        message=message,
        status_url=status_url(base_url, job_id),
        result_url=result_url(base_url, job_id),
    )


def job_summary(job: Job) -> JobSummary:
    return JobSummary(
        job_id=job.spec.job_id,
        status=STATUS_WORDS[job.status.phase],
        operation=job.spec.operation.kind,
        created_at=iso(job.spec.created_at),
        completed_at=iso(job.status.completed_at),
    )


def job_failure(job: Job) -> JobFailure | None:
    error = job.status.error
    return None if error is None else JobFailure(code=error.code, message=error.message)


def job_list_entry(job: Job) -> JobListEntry:
    """Unset optional keys stay off the wire: the list is answered with ``exclude_unset``."""
    entry = JobListEntry(
        **job_summary(job).model_dump(),
        file_name=job.spec.input.file_name,
        page_count=pages_read(job),
    )
    if (failure := job_failure(job)) is not None:
        entry.error = failure
    if job.status.progress is not None:
        entry.progress = JobProgress(**job.status.progress.model_dump())
    if job.spec.batch_id is not None:
        entry.batch_id = job.spec.batch_id
    return entry


def job_detail(job: Job, base_url: str) -> JobDetail:
    """Unset optional keys stay off the wire: routes answer it with ``exclude_unset``."""
    spec, status = job.spec, job.status
    detail = JobDetail(
        **job_summary(job).model_dump(),
        started_at=iso(status.started_at),
        attempts=status.attempts,
        page_count=pages_read(job),
        file_name=spec.input.file_name,
        message=status.message,
        result_url=result_url(base_url, spec.job_id),
    )
    if status.phase is Phase.RETRYING:
        detail.next_attempt_at = iso(status.next_attempt_at)
    if (failure := job_failure(job)) is not None:
        detail.error = failure
    if status.progress is not None:
        detail.progress = JobProgress(**status.progress.model_dump())
    if status.details.get("confidence") is not None:
        detail.confidence = OcrConfidence(**status.details["confidence"])
    if isinstance(tiers := status.details.get("pages_by_tier"), dict):
        detail.pages_by_tier = {str(tier): int(pages) for tier, pages in tiers.items()}
    if isinstance(layers := status.details.get("text_layer"), dict):
        detail.text_layer = SearchableTextLayer(**layers)
    if spec.batch_id is not None:
        detail.batch_id = spec.batch_id
    return detail


class RenderedDetails:
    """Each job's detail as sent, kept while the backend hands out that same job object.

    A backend that keeps recently read jobs in memory hands out one object per job until the
    job changes, so pollers get bytes built once per change; a job read afresh is built
    again. Used on the event loop only.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._bodies: dict[str, tuple[Job, str, bytes]] = {}

    def body(self, job: Job, base_url: str) -> bytes:
        job_id = job.spec.job_id
        kept = self._bodies.get(job_id)
        if kept is not None and kept[0] is job and kept[1] == base_url:
            return kept[2]
        detail = job_detail(job, base_url)
        body = detail.model_dump_json(by_alias=True, exclude_unset=True).encode()
        self._bodies.pop(job_id, None)
        if len(self._bodies) >= self.max_entries:  # the oldest built go first
            del self._bodies[next(iter(self._bodies))]
        self._bodies[job_id] = (job, base_url, body)
        return body


# --- the parse API -------------------------------------------------------------------------


def parse_job(job: Job, result: object, base_url: str) -> ParseJob:
    """``result``: the job's JSON result when it is small enough to be part of the job."""
    progress = job.status.progress
    return ParseJob(
        **job_view(job, result),
        result_url=result_url(base_url, job.spec.job_id),
        progress=None if progress is None else ParseJobProgress(**progress.model_dump()),
    )


def delivery_view(record: DeliveryRecord) -> DeliveryView:
    return DeliveryView(
        id=delivery_id(record.job_id, record.target, record.event_type),
        target=record.target,
        event=record.event_type,
        delivered=record.delivered,
        attempts=[
            DeliveryAttemptView(at=iso(a.at), status_code=a.status_code, error=a.error)
            for a in record.attempts
        ],
    )


def template_view(template: Template) -> TemplateView:
    """Null keys stay off the wire: routes answer it with ``exclude_none``."""
    return TemplateView(
        template_id=template.template_id,
        **dict(template.spec),
        created_at=iso(template.created_at),
        updated_at=iso(template.updated_at),
    )


def endpoint_view(endpoint: WebhookEndpoint) -> WebhookEndpointView:
    return WebhookEndpointView(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        description=endpoint.description,
        created_at=iso(endpoint.created_at),
        updated_at=iso(endpoint.updated_at),
    )
