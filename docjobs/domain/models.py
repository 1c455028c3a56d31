"""Wire models shared by the API, the backends, the operator and the runner.

A job is a :class:`JobSpec` (what to do, decided once at submission) and a
:class:`JobStatus` (what has happened so far, owned by ``lifecycle``).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

from docjobs.templates.schema import OcrTier, TemplateSpec
from docjobs.templates.store import content_version

DOMAIN = "docjobs.io"
"""Prefix of every label, annotation and API group docjobs owns."""

TENANT_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
"""A tenant: a DNS label, so it can be a label value and the first folder of its objects."""
JOB_ID_PATTERN = r"^job_[0-9a-f]{24}(-[1-9][0-9]{0,5})?$"
"""``job_<24 hex>``, or a resubmission's successor ``job_<24 hex>-2``, ``-3``..."""
TEMPLATE_VERSION_PATTERN = r"^[0-9a-f]{16}$"
"""A template's content version (:func:`content_version`); it names an object, so no more."""


class Phase(StrEnum):
    PENDING = "Pending"
    PROCESSING = "Processing"
    RETRYING = "Retrying"
    COMPLETE = "Complete"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.COMPLETE, Phase.FAILED, Phase.CANCELLED})
TERMINAL_PHASE_NAMES = frozenset(p.value for p in TERMINAL_PHASES)
"""The same, as the strings a resource's ``status.phase`` holds."""


class Engine(StrEnum):
    """Which runner image and resource profile an operation needs."""

    CONVERT = "convert"
    TESSERACT = "tesseract"
    DOCTR = "doctr"
    VISION = "vision"
    EXTRACT = "extract"
    OFFICE = "office"


# camelCase on the wire of custom resources (``by_alias=True``); snake_case elsewhere.
_CAMEL = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, **_CAMEL)


PAGES_PATTERN = r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$"

PdfVariant = Literal["pdf/a-2b", "pdf/a-3b", "pdf/ua-1"]
"""Standards a converted PDF can be made to conform to: PDF/A-2b and PDF/A-3b (archival:
fonts embedded, an sRGB output intent, XMP metadata; A-3 also keeps embedded files) and
PDF/UA-1 (accessible: tagged, with a title and a language)."""


class ConvertToPdf(_Model):
    """Render text, HTML, Markdown or JSON into a PDF, or an Office document (``office``:
    Word, Excel, PowerPoint, OpenDocument or RTF, told apart by its content)."""

    kind: Literal["convert"] = "convert"
    source_format: Literal["text", "html", "markdown", "json", "office"]
    pdf_variant: PdfVariant | None = None
    """The standard the PDF conforms to; a plain PDF when absent. Of Office documents, only
    text documents (doc, docx, odt, rtf) take pdf/ua-1."""


OcrOutput = Literal["simple", "detailed", "searchable_pdf", "hocr", "alto", "markdown"]
"""``simple`` and ``detailed``: JSON; ``searchable_pdf``: the input as a PDF with the
recognised words as an invisible text layer; ``hocr`` (hOCR 1.2 XHTML), ``alto`` (ALTO v4
XML) and ``markdown``: the same words in those formats."""


class OcrParams(_Model):
    output: OcrOutput = "simple"
    language: str = Field(default="eng", pattern=r"^[A-Za-z_]{2,16}(\+[A-Za-z_]{2,16})*$")
    pages: str | None = Field(
        default=None,
        pattern=PAGES_PATTERN,
        description="1-based page selection such as '1-3,5'; all pages when absent.",
    )


class OcrSimple(OcrParams):
    """Tesseract OCR."""

    kind: Literal["ocr.simple"] = "ocr.simple"


class OcrAdvanced(OcrParams):
    """docTR OCR on the GPU pool."""

    kind: Literal["ocr.advanced"] = "ocr.advanced"


class OcrVision(OcrParams):
    """OCR by a vision language model."""

    kind: Literal["ocr.vision"] = "ocr.vision"


class OcrAuto(OcrParams):
    """Tesseract first, docTR and then a vision language model for the pages it reads badly."""

    kind: Literal["ocr.auto"] = "ocr.auto"
    confidence_threshold: float | None = Field(default=None, ge=0, le=100)
    """A page Tesseract reads with less confidence (0-100) is read again by the stronger
    tiers; absent: the runner's setting (``DOCJOBS_OCR__AUTO_THRESHOLD``)."""


class Extract(_Model):
    """Fill a template's fields from a document, by rules or by a language model."""

    kind: Literal["extract"] = "extract"
    template_id: str
    template_version: str = Field(pattern=TEMPLATE_VERSION_PATTERN)
    """The template's content version at submission; the runner reads that version from the
    object store, so changing the template later leaves this job as it was submitted."""
    template: SkipJsonSchema[TemplateSpec | None] = Field(default=None, exclude=True)
    """The template itself, only in memory: from submission until its version is stored,
    and in the runner once read. Never part of a stored or sent job."""
    engine: Literal["rules", "llm"] = "rules"
    language: str = Field(default="eng", pattern=r"^[A-Za-z_]{2,16}(\+[A-Za-z_]{2,16})*$")
    """Tesseract language for pages without a text layer."""
    ocr: OcrTier = "simple"
    """The OCR tier that reads pages without a text layer."""

    @model_validator(mode="before")
    @classmethod
    def _version_of_a_copy(cls, data: Any) -> Any:
        # Jobs stored before template versions carry the template itself: its hash is the
        # version they run with.
        if (
            isinstance(data, dict)
            and data.get("template") is not None
            and not {"template_version", "templateVersion"} & data.keys()
        ):
            template = TemplateSpec.model_validate(data["template"])
            return {**data, "template": template, "template_version": content_version(template)}
        return data


Operation = Annotated[
    ConvertToPdf | OcrSimple | OcrAdvanced | OcrVision | OcrAuto | Extract,
    Field(discriminator="kind"),
]

ENGINE_OF: dict[str, Engine] = {
    "convert": Engine.CONVERT,
    "ocr.simple": Engine.TESSERACT,
    "ocr.advanced": Engine.DOCTR,
    "ocr.vision": Engine.VISION,
    # Tesseract reads every page; docTR and Claude are reached from the same runner, on
    # the CPU pool (see ``docjobs.runner.engines.ocr_auto``).
    "ocr.auto": Engine.TESSERACT,
    "extract": Engine.EXTRACT,
}


def engine_of(
    operation: ConvertToPdf | OcrSimple | OcrAdvanced | OcrVision | OcrAuto | Extract,
) -> Engine:
    if isinstance(operation, Extract) and operation.ocr == "advanced":
        # docTR reads the scans: the runner image and pool (GPU) docTR needs.
        return Engine.DOCTR
    if isinstance(operation, ConvertToPdf) and operation.source_format == "office":
        return Engine.OFFICE
    return ENGINE_OF[operation.kind]


class InputRef(_Model):
    """Where the submitted document lives in the object store, and what it is."""

    key: str
    file_name: str
    content_type: str
    sha256: str
    size: int = Field(ge=0)
    page_count: int | None = Field(default=None, ge=0)
    bucket: str | None = None


class RetryPolicy(_Model):
    max_attempts: int = Field(default=3, ge=1, le=20)
    """Attempts in all, the first one included."""
    initial_backoff_seconds: float = Field(default=5.0, ge=0)
    backoff_multiplier: float = Field(default=5.0, ge=1)
    max_backoff_seconds: float = Field(default=600.0, ge=0)

    def backoff_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = self.initial_backoff_seconds * self.backoff_multiplier ** max(attempt - 1, 0)
        return float(min(delay, self.max_backoff_seconds))


class JobSpec(_Model):
    job_id: str
    tenant: str
    operation: Operation
    input: InputRef
    retry_policy: RetryPolicy = RetryPolicy()
    timeout_seconds: float = Field(default=600.0, gt=0)
    """Deadline of one attempt; a runner past it is stopped and the attempt counts as failed."""
    ttl_seconds_after_finished: int = Field(default=86400, ge=0)
    interactive: bool = False
    """A caller is waiting on the answer: such jobs are started before queued batch work."""
    fingerprint: str | None = None
    webhook_url: str | None = None
    """Announce this job's end here too, besides the tenant's registered endpoints."""
    traceparent: str | None = None
    """W3C trace context of the request that made the job: its attempts, and the deliveries
    of its webhooks, are spans of that trace."""
    batch_id: str | None = None
    """The batch the document came in (``POST /api/v1/batches``), if any."""
    created_at: datetime


class ResultRef(_Model):
    key: str
    content_type: str
    size: int = Field(ge=0)


class JobError(_Model):
    reason: str
    """CamelCase, as the runner reports it and ``kubectl get dj`` shows it."""
    message: str
    permanent: bool

    @property
    def code(self) -> str:
        """The reason in the API's words: failed jobs, sync answers and webhooks alike."""
        return error_code(self.reason)


_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def error_code(reason: str) -> str:
    """``PageRangeOutOfBounds`` as ``page_range_out_of_bounds``, ``InvalidJSON`` as
    ``invalid_json``; a code already in snake_case stays as it is."""
    return _WORD_BOUNDARY.sub("_", reason).lower()


CPU_SECONDS = "cpu_seconds"
"""A runner summary's detail: the CPU time (user and system, its children's included) the
attempt used, whether it completed or failed; a merge's includes its parts'."""


class RunnerSummary(_Model):
    """What a runner reports when it exits; the termination message (at most 4 KB)."""

    model_config = ConfigDict(extra="ignore", frozen=True, **_CAMEL)

    result: ResultRef | None = None
    page_count: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    error: JobError | None = None

    @property
    def cpu_seconds(self) -> float:
        """The CPU time the runner reported (:data:`CPU_SECONDS`); 0 when it reported none."""
        return reported_cpu_seconds(self.details)

    def charged(self, seconds: float) -> RunnerSummary:
        """This summary reporting ``seconds`` more CPU time."""
        used = round(self.cpu_seconds + max(seconds, 0.0), 3)
        return self.model_copy(update={"details": {**self.details, CPU_SECONDS: used}})


def reported_cpu_seconds(details: dict[str, Any]) -> float:
    value = details.get(CPU_SECONDS)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return 0.0
    return round(float(value), 3)


class Progress(_Model):
    """Pages of the current attempt read so far, out of the pages it reads."""

    pages_done: int = Field(ge=0)
    pages_total: int = Field(ge=0)


class JobStatus(_Model):
    phase: Phase = Phase.PENDING
    attempts: int = Field(default=0, ge=0)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    next_attempt_at: datetime | None = None
    result: ResultRef | None = None
    page_count: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    error: JobError | None = None
    message: str = ""
    progress: Progress | None = None
    """Known while an attempt reads a document in parts, and once it completed."""
    cpu_seconds: float = Field(default=0.0, ge=0)
    """The runner CPU time the job's ended attempts reported, each attempt's once: failed
    ones included, what the job costs."""


class Job(_Model):
    spec: JobSpec
    status: JobStatus = JobStatus()
    cancel_requested: bool = False
    expired: bool = False


EXIT_OK = 0
EXIT_PERMANENT = 42
EXIT_TRANSIENT = 1
"""Any other code is transient too; this is the one docjobs itself uses."""
"""Runner exit codes: 0 done, 42 permanent failure (never retried), anything else transient."""


class RunOutcome(_Model):
    """One attempt's end as the runner reports it."""

    exit_code: int
    summary: RunnerSummary = RunnerSummary()


class PagePart(_Model):
    """One run of a document's pages, read apart from the rest of the attempt."""

    index: int = Field(ge=0)
    """Position among the attempt's parts: parts are merged in this order."""
    pages: str = Field(pattern=PAGES_PATTERN)


class WorkerRequest(_Model):
    """One line a supervisor writes to a warm runner worker: run this attempt, or one step
    of it when its pages are read by several workers at once."""

    spec: JobSpec
    attempt: int = Field(ge=1)
    part: PagePart | None = None
    """Read only these pages and store them as this part, not as the result."""
    merge_parts: int | None = Field(default=None, ge=1)
    """Merge this many stored parts into the result, which finishes the attempt."""


def batchable(request: WorkerRequest) -> bool:
    """Whether ``request`` may share a :class:`WorkerBatch`: a whole docTR document."""
    return (
        engine_of(request.spec.operation) is Engine.DOCTR
        and request.part is None
        and request.merge_parts is None
    )


class WorkerBatch(_Model):
    """One line a supervisor writes to a warm runner worker: run these attempts together,
    their pages read through one docTR predictor in shared batches. The worker answers one
    :class:`RunOutcome` line per request, in their order.

    Only whole-document docTR attempts share batches: other engines gain nothing from it,
    and a part or a merge is already one step of a larger attempt."""

    requests: list[WorkerRequest] = Field(min_length=1)

    @model_validator(mode="after")
    def _whole_doctr_documents(self) -> WorkerBatch:
        for request in self.requests:
            if engine_of(request.spec.operation) is not Engine.DOCTR:
                raise ValueError(
                    f"{request.spec.job_id}: only docTR attempts are read in batches,"
                    f" not {request.spec.operation.kind}"
                )
            if request.part is not None or request.merge_parts is not None:
                raise ValueError(f"{request.spec.job_id}: only whole documents are read in batches")
        return self
