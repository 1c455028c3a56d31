"""The common path of every processing endpoint: queue a job, then wait or answer 202."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from docjobs.auth.keys import Principal
from docjobs.backends.base import Backend, Submission
from docjobs.config import Settings
from docjobs.documents import DocumentError
from docjobs.domain.idempotency import DUPLICATE_MESSAGE, fingerprint
from docjobs.domain.models import Job, Operation, Phase

from .errors import ApiError
from .uploads import SavedUpload
from .views import accepted

# Permanent failures the caller can fix by changing a parameter, not the document.
_PARAMETER_REASONS = {"UnsupportedLanguage", "PageRangeOutOfBounds"}


def document_error(exc: DocumentError) -> ApiError:
    return ApiError(exc.status_code, exc.code, exc.message)


async def queue_job(
    request: Request,
    backend: Backend,
    principal: Principal,
    operation: Operation,
    upload: SavedUpload,
    content_type: str,
    page_count: int | None,
    interactive: bool,
    webhook_url: str | None = None,
) -> tuple[Job, bool]:
    """The new job, or the original one of a duplicate submission (and False)."""
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise ApiError(422, "invalid_parameters", "Idempotency-Key must be 1-255 characters.")
    return await backend.submit(
        Submission(
            tenant=principal.tenant,
            operation=operation,
            source=upload.path,
            file_name=upload.file_name,
            content_type=content_type,
            sha256=upload.sha256,
            size=upload.size,
            page_count=page_count,
            interactive=interactive,
            fingerprint=fingerprint(principal.tenant, operation, upload.sha256, idempotency_key),
            webhook_url=webhook_url,
        )
    )


async def submit(
    request: Request,
    backend: Backend,
    settings: Settings,
    principal: Principal,
    operation: Operation,
    upload: SavedUpload,
    content_type: str,
    page_count: int | None,
    run_async: bool,
) -> Response:
    """the jobs API's answer: 202 with the job, or the result itself once done."""
    job, created = await queue_job(
        request,
        backend,
        principal,
        operation,
        upload,
        content_type,
        page_count,
        interactive=not run_async,
    )
    base_url = str(request.base_url)
    if run_async:
        message = "Job queued for processing" if created else DUPLICATE_MESSAGE
        return JSONResponse(accepted(job, base_url, message), status_code=202)
    job = await backend.wait(job.spec.job_id, settings.limits.sync_wait_seconds)
    if not job.status.phase.terminal:
        message = "Processing is taking longer than the sync limit; it goes on as a job"
        return JSONResponse(accepted(job, base_url, message), status_code=202)
    return sync_answer(backend, job)


def sync_answer(backend: Backend, job: Job) -> Response:
    status = job.status
    headers = {"X-Job-Id": job.spec.job_id}
    if status.phase is Phase.COMPLETE and status.result is not None:
        return result_response(backend, job, headers)
    if status.phase is Phase.CANCELLED:
        raise ApiError(409, "job_cancelled", "The job was cancelled.", headers=headers)
    error = status.error
    if error is not None and error.permanent:
        code = 422 if error.reason in _PARAMETER_REASONS else 400
        raise ApiError(code, snake(error.reason), error.message, headers=headers)
    message = error.message if error else "processing failed"
    raise ApiError(503, "processing_failed", f"Processing failed: {message}", headers=headers)


def result_response(backend: Backend, job: Job, headers: dict[str, str]) -> Response:
    result = job.status.result
    assert result is not None
    if result.content_type == "application/json":
        return Response(
            b"".join(backend.iter_result(job)), media_type="application/json", headers=headers
        )
    stem = job.spec.input.file_name.rsplit(".", 1)[0] or "result"
    extension = result.key.rsplit(".", 1)[-1]
    disposition = f'attachment; filename="{_ascii(stem)}.{extension}"'
    return StreamingResponse(
        backend.iter_result(job),
        media_type=result.content_type,
        headers={**headers, "Content-Disposition": disposition, "Content-Length": str(result.size)},
    )


def snake(reason: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", reason).lower()


def _ascii(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "result"
