"""the parse API: ``POST /v1/documents/parse[/async]`` and ``GET /v1/jobs/{jobId}``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from docjobs.auth.keys import Principal
from docjobs.backends.base import Backend
from docjobs.config import Settings
from docjobs.documents import DocumentError, check_language, inspect_for_ocr
from docjobs.domain.clock import iso
from docjobs.domain.events import PARSE_STATUS_WORDS, job_view
from docjobs.domain.idempotency import DUPLICATE_MESSAGE
from docjobs.domain.models import Extract, Job
from docjobs.webhooks.delivery import check_url

from ..deps import BackendDep, PrincipalDep, SettingsDep
from ..errors import ApiError
from ..ratelimit import rate_limited
from ..submit import queue_job
from ..uploads import save_upload

router = APIRouter(tags=["documents"])

INLINE_RESULT_LIMIT = 5 * 1024 * 1024
"""Bytes; JSON results up to this size are part of the job; larger ones only by URL."""

FileField = Annotated[UploadFile | None, File(description="PDF, PNG or JPEG document.")]
TemplateIdField = Annotated[str | None, Form(alias="templateId", description="Template id.")]
LanguageField = Annotated[str, Form(description="OCR language hint, e.g. 'eng'.")]
WebhookField = Annotated[
    str | None, Form(alias="webhookUrl", description="Also announce this job's end here.")
]


def parse_job_view(backend: Backend, job: Job, base_url: str) -> dict[str, Any]:
    view = job_view(job, backend.read_json_result(job, INLINE_RESULT_LIMIT))
    view["resultUrl"] = f"{base_url.rstrip('/')}/api/v1/jobs/{job.spec.job_id}/result"
    return view


async def _queue(
    request: Request,
    backend: Backend,
    settings: Settings,
    principal: Principal,
    file: UploadFile | None,
    template_id: str | None,
    language: str,
    webhook_url: str | None,
    interactive: bool,
) -> tuple[Job, bool]:
    if not template_id:
        raise ApiError(400, "missing_template_id", "templateId is required.")
    template = backend.templates.get(principal.tenant, template_id)
    if template is None:
        raise ApiError(404, "template_not_found", f"No template {template_id!r}.")
    if webhook_url:
        try:
            check_url(webhook_url, settings.webhooks)
        except ValueError as exc:
            raise ApiError(400, "unsafe_webhook_url", str(exc)) from None
    try:
        operation = Extract(
            template_id=template_id,
            template=template.spec,
            engine=template.spec.engine or settings.extract_default_engine,
            language=language,
        )
    except ValueError:
        raise ApiError(400, "invalid_language", f"{language!r} is not a language code.") from None
    upload = await save_upload(
        file, None, settings.data_dir / "tmp", settings.limits.max_upload_bytes, "document"
    )
    try:
        try:
            check_language(language)
            found = await asyncio.to_thread(
                inspect_for_ocr, upload.path, upload.declared_type, upload.file_name
            )
        except DocumentError as exc:
            # the parse API answers every unusable file with 400.
            status = 400 if exc.status_code == 415 else exc.status_code
            raise ApiError(status, exc.code, exc.message) from None
        return await queue_job(
            request,
            backend,
            principal,
            operation,
            upload,
            found.content_type,
            found.page_count,
            interactive,
            webhook_url or None,
        )
    finally:
        upload.discard()


def _accepted(job: Job, created: bool) -> JSONResponse:
    body = {
        "jobId": job.spec.job_id,
        "status": PARSE_STATUS_WORDS[job.status.phase],
        "message": "Job queued for processing" if created else DUPLICATE_MESSAGE,
        "createdAt": iso(job.spec.created_at),
    }
    return JSONResponse(body, status_code=202)


@router.post(
    "/v1/documents/parse/async",
    summary="Extract a template's fields, as a job",
    status_code=202,
    dependencies=[Depends(rate_limited)],
)
async def parse_async(
    request: Request,
    backend: BackendDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    file: FileField = None,
    template_id: TemplateIdField = None,
    language: LanguageField = "eng",
    webhook_url: WebhookField = None,
) -> JSONResponse:
    job, created = await _queue(
        request, backend, settings, principal, file, template_id, language, webhook_url, False
    )
    return _accepted(job, created)


@router.post(
    "/v1/documents/parse",
    summary="Extract a template's fields and wait for them",
    dependencies=[Depends(rate_limited)],
)
async def parse(
    request: Request,
    backend: BackendDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    file: FileField = None,
    template_id: TemplateIdField = None,
    language: LanguageField = "eng",
) -> JSONResponse:
    job, created = await _queue(
        request, backend, settings, principal, file, template_id, language, None, True
    )
    job = await backend.wait(job.spec.job_id, settings.limits.sync_wait_seconds)
    if not job.status.phase.terminal:
        return _accepted(job, created)
    return JSONResponse(parse_job_view(backend, job, str(request.base_url)))


@router.get("/v1/jobs/{job_id}", summary="Get a job (the parse API shape)", tags=["jobs"])
async def get_parse_job(
    request: Request, backend: BackendDep, principal: PrincipalDep, job_id: str
) -> dict[str, Any]:
    job = await backend.get(principal.tenant, job_id)
    if job is None or job.expired:
        raise ApiError(404, "job_not_found", f"No job {job_id!r}.")
    view = parse_job_view(backend, job, str(request.base_url))
    view["webhooks"] = [
        {
            "target": d.target,
            "event": d.event_type,
            "delivered": d.delivered,
            "attempts": [
                {"at": iso(a.at), "statusCode": a.status_code, "error": a.error} for a in d.attempts
            ],
        }
        for d in backend.webhooks.deliveries(job_id)
    ]
    return view
