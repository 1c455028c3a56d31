"""``/api/v1/jobs``: poll, list, download, cancel."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from docjobs.domain.clock import iso
from docjobs.domain.models import Job, Phase

from ..deps import BackendDep, PrincipalDep, SettingsDep
from ..errors import ApiError
from ..schemas import (
    JOB_ID_HEADER,
    PDF_CONTENT,
    JobDetail,
    JobList,
    JobResult,
    error_responses,
)
from ..submit import result_response
from ..views import PHASES_OF_WORD, STATUS_WORDS, RenderedDetails, job_summary

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=error_responses(401, 422, 503))

StatusWord = Literal["pending", "processing", "complete", "failed", "cancelled"]


async def _job(backend: BackendDep, principal: PrincipalDep, job_id: str) -> Job:
    job = await backend.get(principal.tenant, job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"No job {job_id!r}.")
    if job.expired:
        raise ApiError(
            404,
            "job_expired",
            f"Job {job_id!r} finished at {iso(job.status.completed_at)} and was deleted with its "
            f"result after the retention period of {job.spec.ttl_seconds_after_finished} s.",
        )
    return job


@router.get("", summary="List jobs", response_model=JobList)
async def list_jobs(
    backend: BackendDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    status: Annotated[StatusWord | None, Query(description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, description="At most this many, newest first.")] = 20,
) -> JobList:
    limit = min(limit, settings.limits.list_max)
    phases = PHASES_OF_WORD[status] if status else None
    jobs, total = await backend.list_jobs(principal.tenant, phases, limit)
    return JobList(jobs=[job_summary(j) for j in jobs], total=total, limit=limit)


@router.get(
    "/{job_id}",
    summary="Get a job's status",
    response_model=JobDetail,
    response_model_exclude_unset=True,
    responses=error_responses(404),
)
async def get_job(
    request: Request, backend: BackendDep, principal: PrincipalDep, job_id: str
) -> Response:
    job = await _job(backend, principal, job_id)
    # Pollers' request: the bytes built once per change of the job, sent as they are (FastAPI
    # would validate the documented model again).
    rendered: RenderedDetails = request.app.state.rendered_details
    return Response(rendered.body(job, str(request.base_url)), media_type="application/json")


@router.get(
    "/{job_id}/result",
    summary="Download a job's result",
    response_class=Response,
    responses={
        200: {
            "description": "The PDF of a conversion, or the JSON of an OCR or extraction.",
            "model": JobResult,
            "content": PDF_CONTENT,
            "headers": JOB_ID_HEADER,
        },
        **error_responses(404, 409),
    },
)
async def get_result(backend: BackendDep, principal: PrincipalDep, job_id: str) -> Response:
    job = await _job(backend, principal, job_id)
    if job.status.phase is not Phase.COMPLETE or job.status.result is None:
        word = STATUS_WORDS[job.status.phase]
        raise ApiError(
            409,
            "job_not_complete",
            f"Job {job_id!r} is {word}; its result is not available.",
            status=word,
        )
    return await result_response(backend, job, {"X-Job-Id": job_id})


@router.delete(
    "/{job_id}",
    status_code=204,
    summary="Cancel a job",
    response_class=Response,
    responses={204: {"description": "Cancelled."}, **error_responses(404, 409)},
)
async def cancel_job(backend: BackendDep, principal: PrincipalDep, job_id: str) -> Response:
    job = await _job(backend, principal, job_id)
    if job.status.phase in (Phase.COMPLETE, Phase.FAILED):
        word = STATUS_WORDS[job.status.phase]
        raise ApiError(409, "job_finished", f"Job {job_id!r} is already {word}.", status=word)
    await backend.cancel(principal.tenant, job_id)
    return Response(status_code=204)
