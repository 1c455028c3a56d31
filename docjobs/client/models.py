"""What the docjobs API answers, as the client reads it.

The client's own models, apart from the server's: unknown keys are kept (``extra="allow"``),
so a newer server does not break an older client.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

TERMINAL_STATUSES = frozenset({"complete", "failed", "cancelled"})


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class _CamelWire(BaseModel):
    model_config = ConfigDict(
        extra="allow", frozen=True, alias_generator=to_camel, validate_by_name=True
    )


class JobAccepted(_Wire):
    job_id: str
    status: str
    message: str
    status_url: str
    result_url: str


class JobProgress(_Wire):
    pages_done: int
    pages_total: int


class JobFailure(_Wire):
    code: str
    message: str


class JobSummary(_Wire):
    job_id: str
    status: str
    operation: str
    created_at: str
    completed_at: str | None = None


class JobDetail(JobSummary):
    started_at: str | None = None
    attempts: int = 0
    page_count: int | None = None
    file_name: str = ""
    message: str | None = None
    result_url: str = ""
    next_attempt_at: str | None = None
    error: JobFailure | None = None
    progress: JobProgress | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class JobListEntry(JobSummary):
    file_name: str = ""
    page_count: int | None = None
    progress: JobProgress | None = None
    error: JobFailure | None = None


class JobList(_Wire):
    jobs: list[JobListEntry]
    total: int
    """Every job that passes the filters, on this page or another."""
    limit: int
    next_cursor: str | None = None
    """Give it as ``cursor`` (with the same filters) for the next, older page; None on the
    last page."""


class ParseJobAccepted(_CamelWire):
    job_id: str
    status: str
    message: str
    created_at: str


class Template(_CamelWire):
    template_id: str
    name: str
    fields: list[dict[str, Any]]
    created_at: str
    updated_at: str


class WebhookEndpoint(_CamelWire):
    id: str
    url: str
    events: list[str]
    description: str
    created_at: str
    updated_at: str


class CreatedWebhookEndpoint(WebhookEndpoint):
    secret: str
    """Signs this endpoint's events; the server shows it only now."""


class DeliveryAnswer(_CamelWire):
    """One try of a webhook delivery and the receiver's answer."""

    at: str
    status_code: int | None = None
    """None when no answer came (``error`` says what happened)."""
    error: str | None = None


class Delivery(_CamelWire):
    """A settled webhook delivery: a job's end event to one target, with its tries."""

    id: str
    """What the replay methods take."""
    webhook_id: str
    event: str
    job_id: str | None = None
    """The job whose end was announced; None for a batch's end."""
    batch_id: str | None = None
    """The batch whose end was announced (``batch.completed``); None for a job's event."""
    target: str
    """The endpoint id, or the job's own webhook URL."""
    timestamp: str
    tries: int
    last_answer: DeliveryAnswer | None = None
    delivered: bool


class DeliveryPage(_CamelWire):
    deliveries: list[Delivery]
    """Newest job first; possibly fewer than asked (even none) while ``next_cursor`` is set."""
    next_cursor: str | None = None
    """Give it as ``cursor`` for the next page; None once every job was read."""


class Replay(_CamelWire):
    delivery: Delivery
    replay: DeliveryAnswer | None = None
    """The replay's try; None while the receiver has not answered (its answer then shows in
    the delivery log)."""


class BatchCounts(_Wire):
    pending: int
    processing: int
    complete: int
    failed: int
    cancelled: int


class BatchProgress(_Wire):
    finished: int
    total: int | None


class BatchDocument(_Wire):
    index: int
    file_name: str
    job_id: str | None
    error: JobFailure | None = None


class Batch(_Wire):
    """A batch's counts and progress; just after its submission, each file's job too."""

    batch_id: str
    operation: str
    status: str
    counts: BatchCounts
    progress: BatchProgress
    created_at: str
    completed_at: str | None
    documents: list[BatchDocument] = []


class DirectUpload(_Wire):
    """Where to put a document before submitting it by ``upload_id``."""

    upload_id: str
    url: str
    """PUT the document's bytes here (presigned for S3, or signed by the API itself)."""
    method: str = "PUT"
    headers: dict[str, str] = {}
    """Headers the PUT must carry."""
    expires_at: str
    """After this the URL is refused, and the upload deleted unless submitted."""
    max_bytes: int
    """The most a direct upload may hold on this server."""


class TierState(_Wire):
    available: bool
    reason: str
    fix: str | None = None


class PlanLimits(_Wire):
    plan: str
    rate: str
    max_upload_bytes: int
    """The most a document sent in the request itself may hold; a larger one goes through a
    direct upload."""
    max_pages: int
    max_convert_pages: int


class Capabilities(_Wire):
    """What the server can do for the caller: its OCR tiers, outputs, languages, limits."""

    tiers: dict[str, TierState]
    outputs: list[str]
    languages: list[str]
    limits: PlanLimits
