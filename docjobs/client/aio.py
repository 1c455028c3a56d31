"""The asyncio client: :class:`AsyncClient`, the twin of :class:`~docjobs.client.Client`."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .core import (
    Call,
    EventReader,
    JobFilters,
    JobStatus,
    OcrOutput,
    OcrTier,
    PdfVariant,
    Requests,
    SourceFormat,
    checked,
    refuse_finished,
    retry_delay,
)
from .models import (
    Batch,
    Capabilities,
    CreatedWebhookEndpoint,
    Delivery,
    DeliveryPage,
    JobAccepted,
    JobDetail,
    JobList,
    ParseJobAccepted,
    Replay,
    Template,
    WebhookEndpoint,
)
from .uploads import Document, UploadFacts, afile_chunks, put_request

T = TypeVar("T")


class AsyncClient:
    """docjobs at ``base_url`` with one API key. Use it as a context manager, or ``close``."""

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = 60.0, max_retries: int = 3
    ) -> None:
        self.requests = Requests(base_url, api_key)
        self.http = httpx.AsyncClient(timeout=timeout)
        self.max_retries = max_retries
        """How often an answer of 429 or 503 with ``Retry-After`` is waited out and retried."""
        self.jobs = AsyncJobs(self)
        self.templates = AsyncTemplates(self)
        self.webhooks = AsyncWebhooks(self)

    async def send(self, call: Call[T]) -> T:
        retries_left = self.max_retries
        response = await self.http.send(call.request)
        while (delay := retry_delay(response, retries_left)) is not None:
            retries_left -= 1
            await asyncio.sleep(delay)
            response = await self.http.send(call.request)
        return call.read(response)

    async def submit_batch(
        self,
        documents: Sequence[Document],
        operation: str,
        *,
        idempotency_key: str | None = None,
        source_urls: Sequence[str] = (),
        upload_ids: Sequence[str] = (),
        **parameters: str,
    ) -> Batch:
        """Every document through ``operation`` (a route's path after ``/api/v1/``, such as
        ``convert/markdown-to-pdf``) with the same ``parameters``, each a job of its own;
        ``source_urls`` and ``upload_ids`` add documents by reference, as ``convert`` takes
        them."""
        call = self.requests.submit_batch(
            documents, operation, parameters, idempotency_key, source_urls, upload_ids
        )
        return await self.send(call)

    async def batch(self, batch_id: str) -> Batch:
        """The batch's counts and progress."""
        return await self.send(self.requests.get_batch(batch_id))

    async def cancel_batch(self, batch_id: str) -> Batch:
        """Cancels every job of the batch still pending or processing."""
        return await self.send(self.requests.cancel_batch(batch_id))

    async def convert(
        self,
        document: Document | None = None,
        source_format: SourceFormat = "html",
        file_name: str | None = None,
        pdf_variant: PdfVariant | None = None,
        *,
        source_url: str | None = None,
        upload_id: str | None = None,
    ) -> JobAccepted:
        """``document`` to PDF; ``pdf_variant`` asks for PDF/A-2b, PDF/A-3b or PDF/UA-1.

        Instead of ``document`` (a path or bytes, sent in the request), give one of
        ``source_url``: an ``https://`` URL the server fetches, or ``s3://bucket/key`` of a
        bucket the installation lets the tenant read; or ``upload_id``: a direct upload's
        (:meth:`upload`). ``file_name`` names an uploaded document only. A reference the
        server refuses raises its error (``UnsafeSourceUrl``, ``SourceUnavailable``,
        ``UploadNotFound``...) with the server's reason as its ``message``."""
        call = self.requests.convert(
            document, source_format, file_name, pdf_variant, source_url, upload_id
        )
        return await self.send(call)

    async def ocr(
        self,
        document: Document | None = None,
        tier: OcrTier = "simple",
        *,
        output: OcrOutput = "simple",
        pages: str | None = None,
        language: str | None = None,
        file_name: str | None = None,
        confidence_threshold: float | None = None,
        source_url: str | None = None,
        upload_id: str | None = None,
    ) -> JobAccepted:
        """``confidence_threshold`` (0-100) only for the ``auto`` tier: pages Tesseract reads
        with less confidence are read again by docTR or Claude; the server's when ``None``.
        ``source_url`` or ``upload_id`` instead of ``document``: as :meth:`convert` takes
        them."""
        call = self.requests.ocr(
            document,
            tier,
            output,
            pages,
            language,
            file_name,
            confidence_threshold,
            source_url,
            upload_id,
        )
        return await self.send(call)

    async def parse(
        self,
        document: Document | None,
        template_id: str,
        *,
        language: str | None = None,
        webhook_url: str | None = None,
        file_name: str | None = None,
        source_url: str | None = None,
        upload_id: str | None = None,
    ) -> ParseJobAccepted:
        """Fields of ``template_id`` from the document: ``document`` (``None`` with
        ``source_url`` or ``upload_id``, as :meth:`convert` takes them)."""
        call = self.requests.parse(
            document, template_id, language, webhook_url, file_name, source_url, upload_id
        )
        return await self.send(call)

    async def capabilities(self) -> Capabilities:
        """What the server can do for this key: OCR tiers, outputs, languages, and limits
        (``limits.max_upload_bytes``: past it, a document goes through :meth:`upload`)."""
        return await self.send(self.requests.capabilities())

    async def upload(
        self,
        document: Document,
        content_type: str | None = None,
        *,
        file_name: str | None = None,
    ) -> str:
        """Puts ``document`` (a path, streamed from the file, or bytes) where the server
        keeps direct uploads, and returns the ``upload_id`` a submission names it by, before
        the upload expires; an upload serves one submission. It may be larger than the
        server's request limit (``capabilities().limits.max_upload_bytes``), up to the limit of
        direct uploads. ``content_type`` and ``file_name``: guessed from the path when not
        given."""
        facts = await asyncio.to_thread(UploadFacts.of, document, file_name, content_type)
        created = await self.send(self.requests.create_upload(facts))
        body = afile_chunks(document) if isinstance(document, Path) else document
        checked(await self.http.send(put_request(created, facts.size, body)))
        return created.upload_id

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncJobs:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def get(self, job_id: str) -> JobDetail:
        return await self.client.send(self.client.requests.get_job(job_id))

    async def list(
        self,
        status: JobStatus | None = None,
        limit: int = 20,
        *,
        cursor: str | None = None,
        operation: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        file_name: str | None = None,
    ) -> JobList:
        """One page of the tenant's jobs, newest first; the next with ``cursor`` set to this
        page's ``next_cursor`` (and the same filters)."""
        filters = JobFilters(cursor, operation, created_after, created_before, file_name)
        return await self.client.send(self.client.requests.list_jobs(status, limit, filters))

    async def cancel(self, job_id: str) -> None:
        """Cancels a pending or processing job; raises ``JobFinished`` for a complete or
        failed one, which it leaves as it is."""
        refuse_finished(await self.get(job_id))
        await self.client.send(self.client.requests.delete_job(job_id))

    async def delete(self, job_id: str) -> None:
        """Cancels an unfinished job; erases a finished one for good (its input, result and
        records), after which it is unknown (``JobNotFound``)."""
        await self.client.send(self.client.requests.delete_job(job_id))

    async def result(self, job_id: str) -> bytes:
        return await self.client.send(self.client.requests.job_result(job_id))

    async def wait(
        self, job_id: str, timeout: float = 600.0, poll_seconds: float = 1.0
    ) -> JobDetail:
        """The job once finished: follows its event stream, and polls where there is none
        (a proxy that buffers it, a dropped connection). Raises ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(httpx.HTTPError):  # polling finds the job's end all the same
            await self._follow(job_id, deadline)
        while not (job := await self.get(job_id)).finished:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout} s")
            await asyncio.sleep(min(poll_seconds, max(deadline - time.monotonic(), 0.0)))
        return job

    async def _follow(self, job_id: str, deadline: float) -> None:
        reader = EventReader()
        url = self.client.requests.events_url(job_id)
        headers = self.client.requests.headers
        async with self.client.http.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                return
            async for line in response.aiter_lines():
                if reader.feed(line) or time.monotonic() >= deadline:
                    return


class AsyncTemplates:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def create(self, spec: Mapping[str, Any]) -> Template:
        return await self.client.send(self.client.requests.create_template(spec))

    async def list(self) -> list[Template]:
        return await self.client.send(self.client.requests.list_templates())

    async def get(self, template_id: str) -> Template:
        return await self.client.send(self.client.requests.get_template(template_id))

    async def update(self, template_id: str, spec: Mapping[str, Any]) -> Template:
        return await self.client.send(self.client.requests.update_template(template_id, spec))

    async def delete(self, template_id: str) -> None:
        await self.client.send(self.client.requests.delete_template(template_id))


class AsyncWebhooks:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def create(
        self, url: str, events: list[str] | None = None, description: str = ""
    ) -> CreatedWebhookEndpoint:
        return await self.client.send(self.client.requests.create_webhook(url, events, description))

    async def list(self) -> list[WebhookEndpoint]:
        return await self.client.send(self.client.requests.list_webhooks())

    async def get(self, endpoint_id: str) -> WebhookEndpoint:
        return await self.client.send(self.client.requests.get_webhook(endpoint_id))

    async def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
    ) -> WebhookEndpoint:
        call = self.client.requests.update_webhook(endpoint_id, url, events, description)
        return await self.client.send(call)

    async def delete(self, endpoint_id: str) -> None:
        await self.client.send(self.client.requests.delete_webhook(endpoint_id))

    async def deliveries(
        self, endpoint_id: str, *, limit: int = 20, cursor: str | None = None
    ) -> DeliveryPage:
        """A page of the endpoint's deliveries, newest job first."""
        call = self.client.requests.webhook_deliveries(endpoint_id, limit, cursor)
        return await self.client.send(call)

    async def replay(self, endpoint_id: str, delivery_id: str) -> Replay:
        """Send a delivery again: the same ``webhook-id`` and body, signed afresh."""
        call = self.client.requests.replay_webhook_delivery(endpoint_id, delivery_id)
        return await self.client.send(call)

    async def job_deliveries(self, job_id: str) -> builtins.list[Delivery]:
        """The deliveries of a job's end event, to its endpoints and its own URL."""
        return await self.client.send(self.client.requests.job_deliveries(job_id))

    async def replay_job_delivery(self, job_id: str, delivery_id: str) -> Replay:
        call = self.client.requests.replay_job_delivery(job_id, delivery_id)
        return await self.client.send(call)
