"""``/api/v1/jobs``: poll, list, download, cancel or erase; and erasure through the parse
API's ``/v1/jobs/{jobId}``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BeforeValidator

from docjobs.backends.base import (
    Backend,
    JobQuery,
    ListPosition,
    decode_cursor,
    encode_cursor,
    listing_position,
)
from docjobs.domain.clock import iso
from docjobs.domain.models import Job, Phase

from ..deps import BackendDep, PrincipalDep, SettingsDep
from ..errors import ApiError
from ..schemas import (
    JOB_ID_HEADER,
    OCR_FORMAT_CONTENT,
    PDF_CONTENT,
    JobDetail,
    JobList,
    JobResult,
    error_responses,
)
from ..submit import result_response
from ..views import PHASES_OF_WORD, STATUS_WORDS, RenderedDetails, job_list_entry

jobs_api = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=error_responses(401, 422, 503))
parse_jobs = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=error_responses(401, 422, 503))

StatusWord = Literal["pending", "processing", "complete", "failed", "cancelled"]
OperationKind = Literal[
    "convert", "ocr.simple", "ocr.advanced", "ocr.vision", "ocr.auto", "extract"
]
DELETE_DESCRIPTION = (
    "A pending or processing job is cancelled (it ends as `cancelled`). A finished job "
    "(complete, failed or cancelled) is erased: its input, result, attempt records and "
    "webhook delivery records are deleted, and the job then answers 404 `job_not_found` "
    "like one that never existed: nothing of it is kept."
)


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


DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _date_time(value: object) -> object:
    """ISO 8601 date and time only: not a bare date, nor a number of seconds."""
    if isinstance(value, str) and not DATE_TIME.match(value):
        raise ValueError("an ISO 8601 date and time, such as 2025-03-01T08:00:00Z")
    return value


QueryTime = Annotated[datetime, BeforeValidator(_date_time)]


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@jobs_api.get(
    "",
    summary="List jobs",
    description="The tenant's jobs, newest first, a page at a time: each page that has a "
    "next one carries `next_cursor`; send it back as `cursor` with the same filters. The "
    "filters combine (all must hold).",
    response_model=JobList,
    response_model_exclude_unset=True,
)
async def list_jobs(
    backend: BackendDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    status: Annotated[StatusWord | None, Query(description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, description="At most this many, newest first.")] = 20,
    cursor: Annotated[
        str | None, Query(description="A previous page's `next_cursor`: the page after it.")
    ] = None,
    operation: Annotated[
        OperationKind | None, Query(description="Only jobs of this operation.")
    ] = None,
    created_after: Annotated[
        QueryTime | None,
        Query(description="Only jobs created after this time (ISO 8601; UTC without a zone)."),
    ] = None,
    created_before: Annotated[
        QueryTime | None, Query(description="Only jobs created before this time.")
    ] = None,
    file_name: Annotated[
        str | None,
        Query(
            min_length=1,
            description="Only jobs whose uploaded file's name starts with this "
            "(the whole name matches too); case-sensitive.",
        ),
    ] = None,
    batch_id: Annotated[
        str | None, Query(min_length=1, description="Only the jobs of this batch.")
    ] = None,
) -> JobList:
    limit = min(limit, settings.limits.list_max)
    after = listing_after(cursor)
    query = JobQuery(
        tenant=principal.tenant,
        limit=limit,
        phases=frozenset(PHASES_OF_WORD[status]) if status else None,
        operation=operation,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        file_name=file_name,
        after=after,
        batch_id=batch_id,
    )
    return await job_page(backend, query)


@jobs_api.get(
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


@jobs_api.get(
    "/{job_id}/result",
    summary="Download a job's result",
    response_class=Response,
    responses={
        200: {
            "description": "The PDF of a conversion, or the JSON of an OCR or extraction "
            "(OCR: the PDF, hOCR, ALTO or Markdown its `output` asked for).",
            "model": JobResult,
            "content": {**PDF_CONTENT, **OCR_FORMAT_CONTENT},
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


@jobs_api.delete(
    "/{job_id}",
    status_code=204,
    summary="Cancel or erase a job",
    description=DELETE_DESCRIPTION,
    response_class=Response,
    responses={204: {"description": "Cancelled, or erased."}, **error_responses(404)},
)
async def cancel_or_erase_job(
    backend: BackendDep, principal: PrincipalDep, job_id: str
) -> Response:
    job = await _job(backend, principal, job_id)
    await _cancel_or_erase(backend, principal.tenant, job)
    return Response(status_code=204)


@parse_jobs.delete(
    "/{job_id}",
    status_code=204,
    summary="Cancel or erase a job (the parse API)",
    description=DELETE_DESCRIPTION,
    response_class=Response,
    responses={204: {"description": "Cancelled, or erased."}, **error_responses(404)},
)
async def cancel_or_erase_parse_job(
    backend: BackendDep, principal: PrincipalDep, job_id: str
) -> Response:
    job = await backend.get(principal.tenant, job_id)
    if job is None or job.expired:
        raise ApiError(404, "job_not_found", f"No job {job_id!r}.")
    await _cancel_or_erase(backend, principal.tenant, job)
    return Response(status_code=204)


async def _cancel_or_erase(backend: BackendDep, tenant: str, job: Job) -> None:
    """Only a job already finished when asked is erased: a cancelled one is kept until
    asked again, so that its end can be seen."""
    if job.status.phase.terminal:
        await backend.erase(job)
    else:
        await backend.cancel(tenant, job.spec.job_id)


router = APIRouter()
router.include_router(jobs_api)
router.include_router(parse_jobs)


def listing_after(cursor: str | None, field: str = "next_cursor") -> ListPosition | None:
    """Where a listing goes on from: the position a ``field`` of this API's pages names
    (``nextCursor`` in the parse API's words)."""
    try:
        return decode_cursor(cursor) if cursor is not None else None
    except ValueError:
        raise ApiError(422, "invalid_parameters", f"cursor: not a {field} this API gave.") from None


async def job_page(backend: Backend, query: JobQuery) -> JobList:
    """One page of the jobs ``query`` selects, with the cursor to the next."""
    page = await backend.list_jobs(query)
    listed = JobList(
        jobs=[job_list_entry(j) for j in page.jobs], total=page.total, limit=query.limit
    )
    if page.more and page.jobs:
        listed.next_cursor = encode_cursor(listing_position(page.jobs[-1]))
    return listed
