"""the jobs API's answer to a submission: 202 with the job, or the result once done."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from docjobs.backends.base import Backend
from docjobs.documents import DocumentError
from docjobs.domain.idempotency import DUPLICATE_MESSAGE
from docjobs.domain.models import Job, Phase

from .errors import ApiError
from .submission import SubmissionRequest, SubmissionService
from .views import accepted, json_response

# Permanent failures the caller can fix by changing a parameter, not the document.
_PARAMETER_REASONS = {"UnsupportedLanguage", "PageRangeOutOfBounds"}


def document_error(exc: DocumentError) -> ApiError:
    return ApiError(exc.status_code, exc.code, exc.message)


async def answer(
    request: Request, submissions: SubmissionService, submission: SubmissionRequest
) -> Response:
    """the jobs API's answer: 202 with the job, or the result itself once done."""
    try:
        submitted = await submissions.submit(submission)
    except DocumentError as exc:
        raise document_error(exc) from None
    job, base_url = submitted.job, str(request.base_url)
    if not submitted.interactive:
        message = "Job queued for processing" if submitted.created else DUPLICATE_MESSAGE
        return json_response(accepted(job, base_url, message), 202)
    backend = submissions.backend
    job = await backend.wait(job.spec.job_id, submissions.settings.limits.sync_wait_seconds)
    if not job.status.phase.terminal:
        message = "Processing is taking longer than the sync limit; it goes on as a job"
        return json_response(accepted(job, base_url, message), 202)
    return await sync_answer(backend, job)


async def sync_answer(backend: Backend, job: Job) -> Response:
    status = job.status
    headers = {"X-Job-Id": job.spec.job_id}
    if status.phase is Phase.COMPLETE and status.result is not None:
        return await result_response(backend, job, headers, waited=True)
    if status.phase is Phase.CANCELLED:
        raise ApiError(409, "job_cancelled", "The job was cancelled.", headers=headers)
    error = status.error
    if error is not None and error.permanent:
        code = 422 if error.reason in _PARAMETER_REASONS else 400
        raise ApiError(code, error.code, error.message, headers=headers)
    message = error.message if error else "processing failed"
    raise ApiError(503, "processing_failed", f"Processing failed: {message}", headers=headers)


async def result_response(
    backend: Backend, job: Job, headers: dict[str, str], *, waited: bool = False
) -> Response:
    result = job.status.result
    assert result is not None
    chunks = await backend.open_result(job, waited=waited)
    headers = {**headers, "Content-Length": str(result.size)}
    if result.content_type != "application/json":  # JSON shows inline, files download
        stem = job.spec.input.file_name.rsplit(".", 1)[0] or "result"
        extension = result.key.rsplit(".", 1)[-1]
        headers["Content-Disposition"] = f'attachment; filename="{_ascii(stem)}.{extension}"'
    # A sync iterator: Starlette reads it in a worker thread, off the event loop.
    return StreamingResponse(chunks, media_type=result.content_type, headers=headers)


def _ascii(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "result"
