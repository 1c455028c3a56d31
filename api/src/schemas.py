"""Response bodies of both route families, as ``/docs`` and ``/openapi.json`` describe them.

The jobs API (``/api/v1``) writes snake_case keys; the parse API (``/v1``) writes camelCase
ones, so its models serialize by their camelCase aliases. Field order is wire order.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.alias_generators import to_camel

from docjobs.templates.schema import Extractor, OcrTier, TemplateField

Timestamp = Annotated[
    str,
    Field(
        description="UTC, to the second.",
        examples=["2024-01-15T10:30:00Z"],
        json_schema_extra={"format": "date-time"},
    ),
]
Responses = dict[int | str, dict[str, Any]]


# --- errors ------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable, machine-readable reason.", examples=["job_not_found"])
    message: str = Field(description="What went wrong, for a person.")


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code": ..., "message": ...}}``, sometimes with more
    keys in ``error`` (the job's ``status`` on 409)."""

    error: ErrorDetail


_ERROR_MEANINGS = {
    400: "The request or the document cannot be used; `error.code` says why.",
    401: "The API key is missing, invalid or revoked.",
    404: "Nothing by that id for this tenant.",
    409: "The job's state does not allow this.",
    413: "The upload, body or template is larger than its limit.",
    415: "The document's type is not supported here.",
    422: "A parameter or the JSON body is invalid.",
    429: (
        "A rate limit is used up (retry after `Retry-After` seconds), or a quota"
        " such as the number of templates is reached (`error.code` says which)."
    ),
    503: "A dependency is unavailable or processing failed transiently; retry later.",
}


def error_responses(*statuses: int) -> Responses:
    """``responses=`` entries documenting ``statuses`` with the one error shape."""
    return {s: {"model": ErrorBody, "description": _ERROR_MEANINGS[s]} for s in statuses}


# --- the jobs API --------------------------------------------------------------------------

JobStatusWord = Literal["pending", "processing", "complete", "failed", "cancelled"]


class JobAccepted(BaseModel):
    """202: the work goes on as a job."""

    job_id: str = Field(examples=["job_0123456789abcdef01234567"])
    status: JobStatusWord
    message: str = Field(examples=["Job queued for processing"])
    status_url: str
    result_url: str


class JobSummary(BaseModel):
    job_id: str
    status: JobStatusWord
    operation: str = Field(examples=["convert", "ocr.simple", "extract"])
    created_at: Timestamp
    completed_at: Timestamp | None


class JobFailure(BaseModel):
    code: str = Field(examples=["PageRangeOutOfBounds"])
    message: str


class JobProgress(BaseModel):
    pages_done: int = Field(ge=0)
    pages_total: int = Field(ge=0)


class OcrConfidence(BaseModel):
    """How well the document read: over its pages that have a confidence."""

    model_config = ConfigDict(extra="forbid")

    mean: float = Field(description="0-100: the mean of the pages' confidences.")
    worst_page: int = Field(description="The page read with the least confidence.")
    worst_page_confidence: float


class SearchableTextLayer(BaseModel):
    """Which read pages of a searchable PDF kept the text they already carried (a
    born-digital or already searchable page) and which got the OCR's words as their layer."""

    model_config = ConfigDict(extra="forbid")

    kept: int = Field(ge=0, description="Pages that kept their own text and got no layer.")
    added: int = Field(ge=0, description="Pages that got the OCR's words as a text layer.")
    kept_pages: str | None = Field(
        default=None,
        description="The pages that kept their text, as in `pages`; left out when long.",
        examples=["1-3,7"],
    )


class JobDetail(JobSummary):
    started_at: Timestamp | None
    attempts: int
    page_count: int | None
    file_name: str
    message: str | None
    result_url: str
    next_attempt_at: Timestamp | None = Field(
        default=None, description="Only while a failed attempt waits for its retry."
    )
    error: JobFailure | None = Field(default=None, description="Only once an attempt failed.")
    progress: JobProgress | None = Field(
        default=None,
        description="Pages read so far: while a document is read in parts, and once complete.",
    )
    confidence: OcrConfidence | None = Field(
        default=None,
        description="Only once an OCR job completed with pages that have a confidence.",
    )
    pages_by_tier: dict[str, int] | None = Field(
        default=None,
        description="Only once a job of the `auto` OCR tier (or a template reading scans with "
        "it) completed: the pages each tier's reading was kept for.",
        examples=[{"tesseract": 18, "doctr": 0, "vision": 2}],
    )
    text_layer: SearchableTextLayer | None = Field(
        default=None, description="Only once an OCR job with `output=searchable_pdf` completed."
    )
    batch_id: str | None = Field(
        default=None, description="Only for a job submitted in a batch: the batch's id."
    )


class JobListEntry(JobSummary):
    file_name: str
    page_count: int | None
    progress: JobProgress | None = Field(
        default=None, description="Pages read so far, as in the job's own view."
    )
    error: JobFailure | None = Field(default=None, description="Why it failed, once it did.")
    batch_id: str | None = Field(
        default=None, description="Only for a job submitted in a batch: the batch's id."
    )


class JobList(BaseModel):
    jobs: list[JobListEntry]
    total: int = Field(
        description="All of the tenant's jobs that pass the filters, on this page or any other."
    )
    limit: int
    next_cursor: str | None = Field(
        default=None,
        description="Send it as `cursor` (with the same filters) for the next, older page; "
        "absent on the last page.",
    )


class OcrBox(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: int
    y: int
    width: int
    height: int


class OcrWord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    confidence: float | None = Field(
        description="0 to 100; null where the tier gives none (vision)."
    )
    bbox: OcrBox = Field(description="Pixels of the page, origin top left.")


class OcrLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    bbox: OcrBox
    words: list[OcrWord]


class OcrBlock(BaseModel):
    """A paragraph, heading or table cell: lines read together."""

    model_config = ConfigDict(extra="forbid")

    bbox: OcrBox
    lines: list[OcrLine]


class OcrPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page: int = Field(description="1-based page number in the document.")
    text: str
    word_count: int
    confidence: float | None = Field(
        default=None,
        description="0-100: the words' confidences weighted by their length; null where no "
        "word has one (a blank page, the vision tier).",
    )
    width: int | None = Field(default=None, description="Pixels; `detailed` output only.")
    height: int | None = Field(default=None, description="Pixels; `detailed` output only.")
    words: list[OcrWord] | None = Field(default=None, description="`detailed` output only.")
    blocks: list[OcrBlock] | None = Field(
        default=None, description="`detailed` output only: the same words by block and line."
    )
    tier: Literal["tesseract", "doctr", "vision"] | None = Field(
        default=None, description="The `auto` tier only: which tier's reading the page keeps."
    )
    reason: str | None = Field(
        default=None,
        description="The `auto` tier only: why that tier read it.",
        examples=["confidence 91 >= 75", "tesseract 23 < 75; doctr 41 < 75"],
    )


class OcrText(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    word_count: int
    page_count: int
    confidence: OcrConfidence | None = Field(
        default=None, description="Null where no page has a confidence."
    )
    pages_by_tier: dict[str, int] | None = Field(
        default=None,
        description="The `auto` tier only: pages kept from each tier.",
        examples=[{"tesseract": 18, "doctr": 0, "vision": 2}],
    )
    pages: list[OcrPage]


class OcrResult(BaseModel):
    """What every OCR tier answers (but for `searchable_pdf`), and its job's result."""

    model_config = ConfigDict(extra="forbid")

    success: bool
    data: OcrText


class ExtractedFields(RootModel[dict[str, Any]]):
    """An extraction job's result: the template's fields, nested by their dotted names."""


class JobResult(RootModel[OcrResult | ExtractedFields]):
    """A finished job's JSON result (OCR and extraction jobs)."""


JOB_ID_HEADER = {
    "X-Job-Id": {"description": "The job that made this answer.", "schema": {"type": "string"}}
}
PDF_CONTENT = {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}
OCR_FORMAT_CONTENT = {
    media_type: {"schema": {"type": "string"}}
    for media_type in ("application/xhtml+xml", "application/xml", "text/markdown")
}
"""OCR results as hOCR, ALTO and Markdown."""


def processing_responses(result: dict[str, Any]) -> Responses:
    """A processing route's answers: ``result`` (200), the job (202), and the errors."""
    return {
        200: {**result, "headers": JOB_ID_HEADER},
        202: {
            "model": JobAccepted,
            "description": "Queued as a job: asked with `async=true`, input over the sync "
            "limit, or still running when the sync wait ended.",
        },
        **error_responses(400, 401, 404, 409, 413, 415, 422, 429, 503),
    }


# --- the parse API -------------------------------------------------------------------------


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True
    )


ParseStatusWord = Literal["pending", "processing", "retrying", "completed", "failed", "cancelled"]


class ParseJobAccepted(CamelModel):
    """202: the job is queued, or is the original one of a duplicate submission."""

    job_id: str
    status: ParseStatusWord
    message: str = Field(
        examples=[
            "Job queued for processing",
            "This document has already been submitted. Returning existing job.",
        ]
    )
    created_at: Timestamp


class ParseJobProgress(CamelModel):
    pages_done: int = Field(ge=0)
    pages_total: int = Field(ge=0)


class ParseJob(CamelModel):
    job_id: str
    status: ParseStatusWord
    operation: str = Field(examples=["extract"])
    file_name: str
    template_id: str | None
    result: Any = Field(
        description="The extracted fields once completed (any JSON result up to 5 MB); "
        "else null. Larger results only at `resultUrl`."
    )
    error: str | None = Field(description="Why the job failed, once it has.")
    error_code: str | None = Field(
        default=None,
        description="The failure's code, the same word as the jobs API's `error.code`.",
        examples=["too_many_pages"],
    )
    page_count: int | None
    attempts: int
    created_at: Timestamp
    started_at: Timestamp | None
    completed_at: Timestamp | None
    result_url: str
    progress: ParseJobProgress | None = Field(
        default=None,
        description="Pages read so far: while a document is read in parts, and once complete.",
    )


class DeliveryAttemptView(CamelModel):
    at: Timestamp
    status_code: int | None = Field(description="The receiver's answer; null if none came.")
    error: str | None


class DeliveryView(CamelModel):
    id: str = Field(
        description="The delivery's id: its job id, a dot, its `webhook-id` (replay routes).",
        examples=["job_0123456789abcdef01234567.msg_0123456789abcdef0123456789abcdef"],
    )
    target: str = Field(description="The endpoint id, or the job's own webhook URL.")
    event: str = Field(examples=["job.completed"])
    delivered: bool
    attempts: list[DeliveryAttemptView]


class DeliveryLogEntry(CamelModel):
    """One settled delivery: an event to one target, with every try so far (replays too)."""

    id: str = Field(
        description="Its job id (its batch id for `batch.completed`), a dot, its "
        "`webhook-id`; what the replay routes take.",
        examples=["job_0123456789abcdef01234567.msg_0123456789abcdef0123456789abcdef"],
    )
    webhook_id: str = Field(description="The `webhook-id` header of every try and replay.")
    event: str = Field(examples=["job.failed"])
    job_id: str | None = Field(
        description="The job whose end was announced; null for `batch.completed`."
    )
    batch_id: str | None = Field(
        default=None,
        description="The batch whose end was announced (`batch.completed`); null for a "
        "job's event.",
    )
    target: str = Field(description="The endpoint id, or the job's own webhook URL.")
    timestamp: Timestamp = Field(description="When its first tries ended (UTC, to the second).")
    tries: int = Field(description="Tries made, replays included.")
    last_answer: DeliveryAttemptView | None = Field(description="The last try and its answer.")
    delivered: bool = Field(description="Whether a try got a 2xx answer.")


class DeliveryLogPage(CamelModel):
    deliveries: list[DeliveryLogEntry] = Field(
        description="Newest job or batch first (by creation time)."
    )
    next_cursor: str | None = Field(
        default=None,
        description="Present when older jobs or batches remain to be read: send it back as "
        "`cursor`. A page may hold fewer deliveries than `limit` (or none) and still have one.",
    )


class DeliveryList(CamelModel):
    deliveries: list[DeliveryLogEntry]


class ReplayAnswer(CamelModel):
    delivery: DeliveryLogEntry = Field(description="The delivery, the replay's try included.")
    replay: DeliveryAttemptView | None = Field(
        description="The replay's try; null while it is still under way (a 202 answer): its "
        "answer is then added to the delivery's tries when it comes."
    )


class ParseJobDetail(ParseJob):
    webhooks: list[DeliveryView] = Field(description="Webhook deliveries of this job's end.")


class TemplateView(CamelModel):
    """A stored template; keys that are null are left out."""

    template_id: str
    name: str
    description: str | None = None
    engine: Extractor | None = None
    ocr: OcrTier = Field(description="The OCR tier that reads scanned pages.")
    fields: list[TemplateField]
    created_at: Timestamp
    updated_at: Timestamp


class TemplateList(BaseModel):
    templates: list[TemplateView]
    total: int


class WebhookEndpointView(CamelModel):
    id: str = Field(examples=["wh_0123456789abcdef01234567"])
    url: str
    events: list[str] = Field(examples=[["job.completed", "job.failed", "job.cancelled"]])
    description: str
    created_at: Timestamp
    updated_at: Timestamp


class WebhookEndpointCreated(WebhookEndpointView):
    secret: str = Field(description="Signs this endpoint's events; shown only now.")


class WebhookEndpointList(BaseModel):
    webhooks: list[WebhookEndpointView]
    total: int


class SigningSecret(BaseModel):
    secret: str = Field(description="Signs events sent to jobs' own webhook URLs.")


# --- usage ---------------------------------------------------------------------------------


class UsageTotals(BaseModel):
    jobs: int = Field(description="Jobs that ended in the span, whatever their status.")
    complete: int
    failed: int
    cancelled: int
    pages: int = Field(
        description="Pages completed jobs read (OCR, extraction) or made (conversions); "
        "failed and cancelled jobs count none."
    )
    pages_by_tier: dict[str, int] = Field(
        description="The same pages by the engine that read them.",
        examples=[{"tesseract": 12, "convert": 3}],
    )
    input_bytes: int = Field(description="Bytes of the documents submitted, every job's.")
    cpu_seconds: float = Field(
        description="Runner CPU time (user and system) of every attempt of the jobs, failed"
        " ones included."
    )


class UsageGroup(UsageTotals):
    """The totals of the jobs that share the grouped fields; a field not grouped by is null.
    Grouped by tier, a job counts under the tier it ran on and its pages under the tiers
    that read them."""

    day: str | None = Field(default=None, description="UTC day the jobs ended (YYYY-MM-DD).")
    operation: str | None = Field(default=None, examples=["ocr.simple"])
    tier: str | None = Field(default=None, examples=["tesseract"])
    status: Literal["complete", "failed", "cancelled"] | None = None


class UsageReport(BaseModel):
    """The caller's usage: the jobs that ended from `from` to `to` (UTC days, included)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    tenant: str
    from_day: str = Field(alias="from", description="First day (YYYY-MM-DD).")
    to_day: str = Field(alias="to", description="Last day (YYYY-MM-DD).")
    group_by: list[Literal["day", "operation", "tier", "status"]]
    totals: UsageTotals
    groups: list[UsageGroup] = Field(description="Empty without `group_by`.")


# --- probes --------------------------------------------------------------------------------


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    dependencies: dict[str, str] = Field(
        description="Each service the API relies on: `ok`, or why it is down.",
        examples=[{"kubernetes": "ok", "objectStore": "no answer for 2 s"}],
    )
    tiers: dict[str, str] = Field(
        default_factory=dict,
        description="Each OCR tier and the LLM engine: `available`, or why not (information: "
        "the service is ready without them; `GET /api/v1/capabilities` says how to enable one).",
        examples=[{"simple": "available", "advanced": "unavailable: no docTR weights ..."}],
    )
