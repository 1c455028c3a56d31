"""the parse API: ``POST /v1/documents/parse[/async]`` and ``GET /v1/jobs/{jobId}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from docjobs.backends.base import Backend
from docjobs.documents import DocumentError
from docjobs.domain.clock import iso
from docjobs.domain.events import PARSE_STATUS_WORDS
from docjobs.domain.idempotency import DUPLICATE_MESSAGE
from docjobs.domain.models import Extract, Job
from docjobs.office_files import ACCEPTED
from docjobs.templates.schema import OcrTier
from docjobs.templates.store import content_version

from ..deps import BackendDep, PrincipalDep
from ..errors import ApiError
from ..ratelimit import rate_limited
from ..schemas import ParseJob, ParseJobAccepted, ParseJobDetail, Responses, error_responses
from ..sources import SourceUrlField, UploadIdField
from ..submission import (
    IdempotencyKey,
    SubmissionRequest,
    Submissions,
    SubmissionService,
    Submitted,
    tesseract_language,
)
from ..uploads import Upload
from ..views import delivery_view, json_response, parse_job
from .capabilities import require_extract_tiers

router = APIRouter(tags=["documents"], responses=error_responses(401, 422, 503))

INLINE_RESULT_LIMIT = 5 * 1024 * 1024
"""Bytes; JSON results up to this size are part of the job; larger ones only by URL."""

FileField = Annotated[
    UploadFile | None,
    File(
        description=f"PDF, PNG, JPEG or TIFF, or an Office document ({ACCEPTED}), read from the"
        " text of the PDF LibreOffice lays it out to."
    ),
]
TemplateIdField = Annotated[str | None, Form(alias="templateId", description="Template id.")]
LanguageField = Annotated[
    str,
    Form(description="OCR language hint for scanned pages: 'en', 'english', 'fr-FR', 'eng+fra'."),
]
OcrField = Annotated[
    OcrTier | None,
    Form(
        description="OCR tier for scanned pages: 'simple' (Tesseract), 'advanced' (docTR), "
        "'vision' (a vision language model) or 'auto' (Tesseract, and docTR then the vision "
        "model where available for pages it reads with a confidence under "
        "DOCJOBS_OCR__AUTO_THRESHOLD); the template's own choice when absent."
    ),
]
WebhookField = Annotated[
    str | None, Form(alias="webhookUrl", description="Also announce this job's end here.")
]


_QUEUED: Responses = {
    202: {
        "model": ParseJobAccepted,
        "description": "Queued, or the original job of a duplicate submission.",
    }
}
_SUBMIT_ERRORS = error_responses(400, 404, 413, 429)


async def parse_job_view(backend: Backend, job: Job, base_url: str) -> ParseJob:
    return parse_job(job, await backend.read_json_result(job, INLINE_RESULT_LIMIT), base_url)


@dataclass(frozen=True)
class ParseForm:
    """The form fields both parse routes read."""

    file: UploadFile | None
    template_id: str | None
    language: str
    ocr: OcrTier | None = None
    webhook_url: str | None = None
    source_url: str | None = None
    upload_id: str | None = None


async def _queue(
    request: Request,
    submissions: SubmissionService,
    tenant: str,
    form: ParseForm,
    idempotency_key: str | None,
    *,
    interactive: bool,
) -> Submitted:
    operation = await _extract(submissions, tenant, form)
    await require_extract_tiers(request, operation)
    submission = SubmissionRequest(
        operation,
        Upload(form.file, source_url=form.source_url, upload_id=form.upload_id),
        tenant,
        interactive,
        idempotency_key,
        form.webhook_url,
    )
    try:
        return await submissions.submit(submission)
    except DocumentError as exc:
        # the parse API answers every unusable file with 400.
        status = 400 if exc.status_code == 415 else exc.status_code
        raise ApiError(status, exc.code, exc.message) from None


async def _extract(submissions: SubmissionService, tenant: str, form: ParseForm) -> Extract:
    """The operation: the template's id and content version (the version is stored with the
    input), the language as Tesseract's and the OCR tier (the request's, else the template's)."""
    template_id, language = form.template_id, form.language
    if not template_id:
        raise ApiError(400, "missing_template_id", "templateId is required.")
    backend = submissions.backend
    template = await backend.offload(backend.templates.get, tenant, template_id)
    if template is None:
        raise ApiError(404, "template_not_found", f"No template {template_id!r}.")
    codes = await tesseract_language(language)
    try:
        return Extract(
            template_id=template_id,
            template_version=content_version(template.spec),
            template=template.spec,
            engine=template.spec.engine or submissions.settings.extract_default_engine,
            language=codes,
            ocr=form.ocr or template.spec.ocr,
        )
    except ValueError:
        raise ApiError(400, "invalid_language", f"{language!r} is not a language code.") from None


def _accepted(job: Job, created: bool) -> ParseJobAccepted:
    return ParseJobAccepted(
        job_id=job.spec.job_id,
        status=PARSE_STATUS_WORDS[job.status.phase],
        message="Job queued for processing" if created else DUPLICATE_MESSAGE,
        created_at=iso(job.spec.created_at),
    )


@router.post(
    "/v1/documents/parse/async",
    summary="Extract a template's fields, as a job",
    status_code=202,
    dependencies=[Depends(rate_limited)],
    responses={**_QUEUED, **_SUBMIT_ERRORS},
)
async def parse_async(
    request: Request,
    principal: PrincipalDep,
    submissions: Submissions,
    idempotency_key: IdempotencyKey = None,
    file: FileField = None,
    template_id: TemplateIdField = None,
    language: LanguageField = "eng",
    ocr: OcrField = None,
    webhook_url: WebhookField = None,
    source_url: SourceUrlField = None,
    upload_id: UploadIdField = None,
) -> ParseJobAccepted:
    form = ParseForm(file, template_id, language, ocr, webhook_url, source_url, upload_id)
    submitted = await _queue(
        request, submissions, principal.tenant, form, idempotency_key, interactive=False
    )
    return _accepted(submitted.job, submitted.created)


@router.post(
    "/v1/documents/parse",
    summary="Extract a template's fields and wait for them",
    dependencies=[Depends(rate_limited)],
    response_model=ParseJob,
    responses={**_QUEUED, **_SUBMIT_ERRORS},
)
async def parse(
    request: Request,
    principal: PrincipalDep,
    submissions: Submissions,
    idempotency_key: IdempotencyKey = None,
    file: FileField = None,
    template_id: TemplateIdField = None,
    language: LanguageField = "eng",
    ocr: OcrField = None,
    source_url: SourceUrlField = None,
    upload_id: UploadIdField = None,
) -> ParseJob | JSONResponse:
    form = ParseForm(file, template_id, language, ocr, None, source_url, upload_id)
    submitted = await _queue(
        request, submissions, principal.tenant, form, idempotency_key, interactive=True
    )
    backend = submissions.backend
    job = await backend.wait(
        submitted.job.spec.job_id, submissions.settings.limits.sync_wait_seconds
    )
    if not job.status.phase.terminal:
        return json_response(_accepted(job, submitted.created), 202)
    return await parse_job_view(backend, job, str(request.base_url))


@router.get(
    "/v1/jobs/{job_id}",
    summary="Get a job (the parse API shape)",
    tags=["jobs"],
    responses=error_responses(404),
)
async def get_parse_job(
    request: Request, backend: BackendDep, principal: PrincipalDep, job_id: str
) -> ParseJobDetail:
    job = await backend.get(principal.tenant, job_id)
    if job is None or job.expired:
        raise ApiError(404, "job_not_found", f"No job {job_id!r}.")
    view = await parse_job_view(backend, job, str(request.base_url))
    deliveries = await backend.offload(backend.webhooks.deliveries, job_id)
    return ParseJobDetail(**dict(view), webhooks=[delivery_view(d) for d in deliveries])
