"""``/api/v1/batches``: many documents for one operation in one request, each a job of its
own (idempotent, retried, listed and cancellable as any job), followed as one batch."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from docjobs.backends.base import Backend, JobQuery, listing_position
from docjobs.capabilities import TierName
from docjobs.documents import DocumentError
from docjobs.domain.batches import Batch, BatchState, document_key, new_batch_id
from docjobs.domain.clock import iso, utcnow
from docjobs.domain.models import (
    ConvertToPdf,
    OcrAdvanced,
    OcrAuto,
    OcrSimple,
    OcrVision,
    Operation,
    PdfVariant,
    Phase,
)
from docjobs.tracing import current_traceparent
from docjobs.usage.quota import MonthlyQuotas

from ..deps import BackendDep, PrincipalDep, SettingsDep
from ..errors import ApiError
from ..ratelimit import rate_limited
from ..schemas import JobFailure, JobList, Timestamp, error_responses
from ..submission import (
    IdempotencyKey,
    SubmissionRequest,
    SubmissionService,
    invalid_parameters,
    tesseract_language,
)
from ..uploads import Upload
from .capabilities import require_tier
from .jobs import job_page, listing_after

router = APIRouter(
    prefix="/api/v1/batches", tags=["batches"], responses=error_responses(401, 422, 503)
)

BatchOperation = Literal[
    "convert/text-to-pdf",
    "convert/html-to-pdf",
    "convert/markdown-to-pdf",
    "convert/json-to-pdf",
    "convert/office-to-pdf",
    "ocr/extract/simple",
    "ocr/extract/advanced",
    "ocr/extract/vision",
    "ocr/extract/auto",
]
_OCR_KINDS: dict[TierName, type[OcrSimple | OcrAdvanced | OcrVision | OcrAuto]] = {
    "simple": OcrSimple,
    "advanced": OcrAdvanced,
    "vision": OcrVision,
    "auto": OcrAuto,
}
UNFINISHED = frozenset({Phase.PENDING, Phase.PROCESSING, Phase.RETRYING})


class BatchCounts(BaseModel):
    pending: int = Field(description="Waiting to start, or for a retry.")
    processing: int
    complete: int
    failed: int
    cancelled: int


class BatchProgress(BaseModel):
    finished: int = Field(description="Jobs that ended: complete, failed or cancelled.")
    total: int | None = Field(description="The batch's jobs; null while it is being submitted.")


class BatchView(BaseModel):
    batch_id: str = Field(examples=["bat_0123456789abcdef01234567"])
    operation: str = Field(examples=["convert/markdown-to-pdf"])
    status: Literal["submitting", "processing", "completed"] = Field(
        description="`completed` once every job of the batch ended, whatever its outcome."
    )
    counts: BatchCounts
    progress: BatchProgress
    created_at: Timestamp
    completed_at: Timestamp | None
    jobs_url: str


class BatchDocument(BaseModel):
    index: int = Field(description="The file's place in the request, from 0.")
    file_name: str
    job_id: str | None = Field(description="Its job; null if the document was refused.")
    error: JobFailure | None = Field(
        default=None, description="Why the document was refused (no job was made for it)."
    )


class BatchSubmitted(BatchView):
    documents: list[BatchDocument]


def _view(state: BatchState, base_url: str) -> BatchView:
    batch, counts = state.batch, state.counts
    return BatchView(
        batch_id=batch.batch_id,
        operation=batch.operation,
        status=state.status,
        counts=BatchCounts(**counts),
        progress=BatchProgress(finished=state.finished, total=batch.total),
        created_at=iso(batch.created_at),
        completed_at=iso(batch.completed_at),
        jobs_url=f"{base_url.rstrip('/')}/api/v1/batches/{batch.batch_id}/jobs",
    )


async def _operation(
    request: Request,
    name: str,
    pdf_variant: PdfVariant | None,
    output: str,
    language: str,
    pages: str | None,
    confidence_threshold: float | None,
    default_threshold: float,
) -> Operation:
    """The operation ``name`` with the form's parameters, as its own route would make it."""
    if name.startswith("convert/"):
        source_format = name.removeprefix("convert/").removesuffix("-to-pdf")
        try:
            return ConvertToPdf.model_validate(
                {"source_format": source_format, "pdf_variant": pdf_variant}
            )
        except ValidationError as exc:
            raise invalid_parameters(exc) from None
    tier = next(t for t in _OCR_KINDS if name == f"ocr/extract/{t}")
    await require_tier(request, tier)
    # docTR reads Latin scripts whatever the language: it takes none.
    codes = "eng" if tier == "advanced" else await tesseract_language(language)
    fields: dict[str, object] = {"output": output, "language": codes, "pages": pages}
    if tier == "auto":
        threshold = confidence_threshold
        fields["confidence_threshold"] = default_threshold if threshold is None else threshold
    try:
        return _OCR_KINDS[tier].model_validate(fields)
    except ValidationError as exc:
        raise invalid_parameters(exc) from None


def _uploads(
    files: list[UploadFile], source_urls: list[str], upload_ids: list[str]
) -> list[tuple[str, Upload]]:
    """The batch's documents with a name to show for each: the files in the request's order,
    then the references (read as a single submission reads them). A document's place in
    this list names its job."""
    documents = [(file.filename or "document", Upload(file)) for file in files]
    documents += [(url, Upload(None, source_url=url)) for url in source_urls]
    documents += [(upload, Upload(None, upload_id=upload)) for upload in upload_ids]
    return documents


@router.post(
    "",
    status_code=202,
    summary="Submit a batch of documents",
    description="Every document (repeated `files` parts, then `source_urls` and `upload_ids` "
    "fields) runs `operation` with the same parameters, as a job of its own: listed, "
    "retried and cancellable like any job, with `batch_id` in its view. A document refused "
    "at submission (unreadable, wrong type, too large, a reference that cannot be read) "
    "makes no job and is named in `documents` with its error; the others go on. "
    "An `Idempotency-Key` names the batch: sent again, the batch is answered as it stands "
    "(no `documents`, nothing submitted again), and one an interrupted request left "
    "`submitting` is finished, each document already submitted keeping its job. "
    "Once every job ended, endpoints subscribed to `batch.completed` get one event with the "
    "counts.",
    response_model=BatchSubmitted,
    responses=error_responses(400, 413, 429),
    dependencies=[Depends(rate_limited)],
)
async def submit_batch(
    request: Request,
    backend: BackendDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    operation: Annotated[
        BatchOperation, Form(description="The route every document runs, as in its path.")
    ],
    files: Annotated[
        list[UploadFile] | None, File(description="The documents, one part each.")
    ] = None,
    source_urls: Annotated[
        list[str] | None,
        Form(description="Documents by reference (repeatable), as the routes' `source_url`."),
    ] = None,
    upload_ids: Annotated[
        list[str] | None,
        Form(description="Direct uploads' ids (repeatable), as the routes' `upload_id`."),
    ] = None,
    idempotency_key: IdempotencyKey = None,
    pdf_variant: Annotated[
        PdfVariant | None, Form(description="Conversions: as their routes take it.")
    ] = None,
    output: Annotated[str, Form(description="OCR: as its routes take it.")] = "simple",
    language: Annotated[str, Form(description="OCR: as its routes take it.")] = "eng",
    pages: Annotated[str | None, Form(description="OCR: as its routes take it.")] = None,
    confidence_threshold: Annotated[
        float | None, Form(ge=0, le=100, description="The `auto` OCR tier: as its route.")
    ] = None,
) -> JSONResponse:
    most = settings.limits.max_batch_files
    uploads = _uploads(files or [], source_urls or [], upload_ids or [])
    if not uploads:
        raise ApiError(
            400,
            "missing_file",
            "Send the documents as 'files' parts, 'source_urls' or 'upload_ids' fields.",
        )
    if len(uploads) > most:
        raise ApiError(
            400,
            "too_many_files",
            f"A batch takes at most {most} documents (DOCJOBS_LIMITS__MAX_BATCH_FILES); this "
            f"one has {len(uploads)}: send the rest as another batch.",
        )
    chosen = await _operation(
        request,
        operation,
        pdf_variant,
        output,
        language,
        pages or None,
        confidence_threshold,
        settings.ocr.auto_threshold,
    )
    tenant = principal.tenant
    batch = await backend.create_batch(
        Batch(
            batch_id=new_batch_id(tenant, idempotency_key),
            tenant=tenant,
            operation=operation,
            created_at=utcnow(),
            ttl_seconds_after_finished=settings.jobs.ttl_seconds,
            traceparent=current_traceparent(),
        )
    )
    if batch.operation != operation:
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"This Idempotency-Key was first sent for a batch of {batch.operation}, "
            f"{batch.batch_id}; send a new key for a new batch.",
        )
    quotas: MonthlyQuotas = request.app.state.usage_quotas
    submissions = SubmissionService(backend, settings, quotas, principal.plan)
    documents: list[BatchDocument] = []
    if batch.total is None:
        for index, (name, upload) in enumerate(uploads):
            documents.append(await _submit_one(submissions, chosen, batch, index, name, upload))
        jobs = {d.job_id for d in documents if d.job_id is not None}
        await backend.seal_batch(batch, len(jobs))
    state = await _state(backend, tenant, batch.batch_id)
    body = BatchSubmitted(**_view(state, str(request.base_url)).model_dump(), documents=documents)
    return JSONResponse(body.model_dump(mode="json"), status_code=202)


async def _submit_one(
    submissions: SubmissionService,
    operation: Operation,
    batch: Batch,
    index: int,
    name: str,
    upload: Upload,
) -> BatchDocument:
    request = SubmissionRequest(
        operation=operation,
        upload=upload,
        tenant=batch.tenant,
        interactive=False,
        idempotency_key=document_key(batch.batch_id, index),
        batch_id=batch.batch_id,
    )
    try:
        submitted = await submissions.submit(request)
    except (DocumentError, ApiError) as exc:
        failure = JobFailure(code=exc.code, message=exc.message)
        return BatchDocument(index=index, file_name=name, job_id=None, error=failure)
    job = submitted.job
    return BatchDocument(index=index, file_name=job.spec.input.file_name, job_id=job.spec.job_id)


async def _state(backend: Backend, tenant: str, batch_id: str) -> BatchState:
    state = await backend.get_batch(tenant, batch_id)
    if state is None:
        raise ApiError(404, "batch_not_found", f"No batch {batch_id!r}.")
    return state


@router.get(
    "/{batch_id}",
    summary="A batch's counts and progress",
    response_model=BatchView,
    responses=error_responses(404),
)
async def get_batch(
    request: Request, backend: BackendDep, principal: PrincipalDep, batch_id: str
) -> BatchView:
    return _view(await _state(backend, principal.tenant, batch_id), str(request.base_url))


@router.get(
    "/{batch_id}/jobs",
    summary="A batch's jobs",
    description="Newest first, a page at a time, as `GET /api/v1/jobs?batch_id=` lists them.",
    response_model=JobList,
    response_model_exclude_unset=True,
    responses=error_responses(404),
)
async def list_batch_jobs(
    backend: BackendDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    batch_id: str,
    limit: Annotated[int, Query(ge=1, description="At most this many, newest first.")] = 20,
    cursor: Annotated[
        str | None, Query(description="A previous page's `next_cursor`: the page after it.")
    ] = None,
) -> JobList:
    await _state(backend, principal.tenant, batch_id)
    limit = min(limit, settings.limits.list_max)
    after = listing_after(cursor)
    query = JobQuery(tenant=principal.tenant, limit=limit, batch_id=batch_id, after=after)
    return await job_page(backend, query)


@router.delete(
    "/{batch_id}",
    summary="Cancel what is left of a batch",
    description="Every job of the batch still pending or processing is cancelled; finished "
    "ones are kept. The batch then completes as its last jobs end (cancelled ones counted).",
    response_model=BatchView,
    responses=error_responses(404),
)
async def cancel_batch(
    request: Request, backend: BackendDep, principal: PrincipalDep, batch_id: str
) -> BatchView:
    tenant = principal.tenant
    await _state(backend, tenant, batch_id)
    after = None
    while True:
        query = JobQuery(
            tenant=tenant, limit=100, phases=UNFINISHED, batch_id=batch_id, after=after
        )
        page = await backend.list_jobs(query)
        for job in page.jobs:
            await backend.cancel(tenant, job.spec.job_id)
        if not page.more or not page.jobs:
            break
        after = listing_position(page.jobs[-1])
    return _view(await _state(backend, tenant, batch_id), str(request.base_url))
