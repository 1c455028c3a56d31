"""The one path from an upload to a job, shared by the convert, OCR and parse routes.

A route reads its form into an operation and a :class:`SubmissionRequest`; the
:class:`SubmissionService` saves the upload, inspects it for that operation (so a document
that can never be processed is refused at once), and submits it to the backend. Each route
family then answers in its own shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from pydantic import ValidationError

from docjobs import office_files
from docjobs.backends.base import Backend, Submission
from docjobs.config import Settings
from docjobs.documents import (
    DocumentError,
    Inspection,
    InspectionCeilings,
    check_language,
    inspect_for_conversion,
)
from docjobs.domain.engines import profile_of
from docjobs.domain.idempotency import fingerprint, same_request
from docjobs.domain.models import ConvertToPdf, Job, OcrParams, Operation
from docjobs.domain.pages import InvalidPageSelection, validate_pages
from docjobs.storage.base import ObjectStore
from docjobs.storage.factory import store_from_settings
from docjobs.tracing import current_traceparent
from docjobs.usage.counted import document_pages
from docjobs.usage.quota import MonthlyQuotas, QuotaExceeded
from docjobs.webhooks.targets import check_url

from .deps import BackendDep, PrincipalDep, SettingsDep
from .errors import ApiError, problems_in_words
from .sources import ReferenceReader, consume_upload, input_store
from .uploads import SavedUpload, Upload, save_upload

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Names the submission: a repeat with the same key returns the same job.",
    ),
]


@dataclass(frozen=True)
class SubmissionRequest:
    """One document to process, as a route read it from its request."""

    operation: Operation
    upload: Upload
    tenant: str
    interactive: bool
    """The caller waits for the answer; a document too large for that becomes a plain job."""
    idempotency_key: str | None = None
    webhook_url: str | None = None
    """Also announce the job's end here (checked for safety before anything is saved)."""
    batch_id: str | None = None
    """The batch the document is part of."""


@dataclass(frozen=True)
class Submitted:
    job: Job
    """The new job, or the original one of a duplicate submission."""
    created: bool
    interactive: bool
    """Whether the job was queued for a waiting caller (see ``SubmissionRequest``)."""


class SubmissionService:
    def __init__(
        self,
        backend: Backend,
        settings: Settings,
        quotas: MonthlyQuotas | None = None,
        plan: str = "",
    ) -> None:
        """``quotas`` and ``plan``: the caller's monthly page quota, if its plan has one."""
        self.backend = backend
        self.settings = settings
        self.quotas = quotas
        self.plan = plan
        self.inputs: ObjectStore | None = None
        """The store of direct uploads; the settings' when not given."""

    def input_store(self) -> ObjectStore:
        if self.inputs is None:
            self.inputs = store_from_settings(self.settings)
        return self.inputs

    async def submit(self, request: SubmissionRequest) -> Submitted:
        """Save, inspect and submit; raises ``DocumentError`` for a document that cannot
        be processed (each route family words that its own way) and ``ApiError`` else."""
        if request.webhook_url:
            try:
                check_url(request.webhook_url, self.settings.webhooks)
            except ValueError as exc:  # UnsafeTarget included
                raise ApiError(400, "unsafe_webhook_url", str(exc)) from None
        await self._within_quota(request.tenant, 0)  # used up: refused before the upload
        limits = self.settings.limits
        inspect = functools.partial(self._inspect, request.operation)
        upload, scratch = request.upload, self.settings.data_dir / "tmp"
        if upload.by_reference:
            reader = ReferenceReader(self.settings, self.input_store(), request.tenant, self.plan)
            saved, (found, fits_sync) = await asyncio.to_thread(
                reader.save, upload.source_url, upload.upload_id, scratch, inspect
            )
        else:
            saved, (found, fits_sync) = await save_upload(
                upload, scratch, limits.max_upload_bytes, inspect
            )
        try:
            interactive = request.interactive and fits_sync
            submission = Submission(
                tenant=request.tenant,
                operation=request.operation,
                source=saved.path,
                file_name=saved.file_name,
                content_type=found.content_type,
                sha256=saved.sha256,
                size=saved.size,
                page_count=found.page_count,
                interactive=interactive,
                fingerprint=fingerprint(
                    request.tenant, request.operation, saved.sha256, request.idempotency_key
                ),
                webhook_url=request.webhook_url or None,
                traceparent=current_traceparent(),
                batch_id=request.batch_id,
            )
            pages = document_pages(request.operation, found.page_count)
            try:
                async with self._admitted(request.tenant, pages, submission.fingerprint):
                    job, created = await self.backend.submit(submission)
            except QuotaExceeded as exc:
                raise ApiError(429, "quota_exceeded", str(exc)) from None
            if upload.upload_id is not None:
                await asyncio.to_thread(
                    consume_upload, self.input_store(), request.tenant, upload.upload_id
                )
        finally:
            saved.discard()
        reused = request.idempotency_key and not created
        if reused and not same_request(job, request.operation, saved.sha256):
            raise ApiError(
                422,
                "idempotency_key_reused",
                f"This Idempotency-Key was first sent with another document or other"
                f" parameters, for job {job.spec.job_id}; send a new key for a new request.",
            )
        return Submitted(job, created, interactive)

    async def _within_quota(self, tenant: str, pages: int) -> None:
        if self.quotas is None:
            return
        refusal = await self.quotas.refusal(tenant, self.plan, pages)
        if refusal is not None:
            raise ApiError(429, "quota_exceeded", refusal)

    def _admitted(
        self, tenant: str, pages: int, fingerprint: str
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Around the job's creation: its pages held against the tenant's quota, if any."""
        if self.quotas is None:
            return contextlib.nullcontext()
        return self.quotas.admitted(tenant, self.plan, pages, fingerprint)

    def _inspect(self, operation: Operation, saved: SavedUpload) -> tuple[Inspection, bool]:
        """What the document is, and whether it is small enough to wait for (the bound the
        operation's profile names: bytes of the upload, or pages selected)."""
        selected: list[int] = []
        if isinstance(operation, ConvertToPdf):
            source_format = operation.source_format
            if source_format == "office":
                office = office_files.detect(saved.path, saved.file_name, self.unpack_ceilings())
                office_files.check_variant(office, operation.pdf_variant)
                found = Inspection(office.content_type, None)
            else:
                found = inspect_for_conversion(saved.path, source_format)
        else:
            found = office_files.inspect_for_reading(
                saved.path,
                saved.declared_type,
                saved.file_name,
                self.inspection_ceilings(),
                self.unpack_ceilings(),
            )
            selected = self._selected_pages(operation, found)
        bound = profile_of(operation).sync_limit
        if bound is None:
            return found, True
        if bound.counts_pages and found.page_count is None:
            # An Office document: pages unknown until the runner lays it out.
            return found, saved.size <= self.settings.limits.sync_office_bytes
        measured = len(selected) if bound.counts_pages else saved.size
        return found, measured <= bound.of(self.settings.limits)

    @staticmethod
    def _selected_pages(operation: Operation, found: Inspection) -> list[int]:
        """The pages a job of ``operation`` reads: those its ``pages`` selects, or all."""
        pages = operation.pages if isinstance(operation, OcrParams) else None
        try:
            return validate_pages(pages, found.page_count or 0)
        except InvalidPageSelection as exc:
            if found.page_count is None and exc.code == "page_range_out_of_bounds":
                return []  # an Office document's end is known in the runner, which checks it
            raise DocumentError(422, exc.code, exc.message) from None

    def unpack_ceilings(self) -> office_files.UnpackCeilings:
        office = self.settings.office
        return office_files.UnpackCeilings(office.max_unpacked_mb * 1024 * 1024, office.max_entries)

    def inspection_ceilings(self) -> InspectionCeilings:
        ceilings = self.settings.ceilings
        return InspectionCeilings(
            max_pages=ceilings.max_pages,
            max_image_pixels=ceilings.max_image_pixels,
            seconds=ceilings.inspect_seconds,
            memory_mb=ceilings.inspect_memory_mb,
        )


async def submission_service(
    request: Request, backend: BackendDep, settings: SettingsDep, principal: PrincipalDep
) -> SubmissionService:
    """The service, for a request that carries at most one document."""
    # The form is parsed (and cached) before dependencies run; reading it again is free.
    files = (await request.form()).getlist("file")
    if len(files) > 1:
        raise ApiError(
            400,
            "too_many_files",
            f"Send one document per request; this one has {len(files)} 'file' parts.",
        )
    quotas: MonthlyQuotas = request.app.state.usage_quotas
    service = SubmissionService(backend, settings, quotas, principal.plan)
    service.inputs = input_store(request.app.state, settings)
    return service


Submissions = Annotated[SubmissionService, Depends(submission_service)]


async def tesseract_language(hint: str) -> str:
    """Tesseract's codes for a client's language hint; 422 if none is installed for it."""
    try:
        # The first call lists the installed languages (a subprocess); later ones are cached.
        return await asyncio.to_thread(check_language, hint)
    except DocumentError as exc:
        raise ApiError(exc.status_code, exc.code, exc.message) from None


def invalid_parameters(exc: ValidationError) -> ApiError:
    """422 naming each form field an operation refused, and why."""
    return ApiError(422, "invalid_parameters", problems_in_words(exc.errors()))
