"""The requests of the docjobs API and how their answers read, for both clients.

Each operation is a :class:`Call`: the request and how to read its answer. The sync and the
async client only differ in how they send it; both retry an answer of 429 or 503 that says
when to come back (``Retry-After``).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from .errors import JobFinished, error_of
from .models import (
    Batch,
    Capabilities,
    CreatedWebhookEndpoint,
    Delivery,
    DeliveryPage,
    DirectUpload,
    JobAccepted,
    JobDetail,
    JobList,
    ParseJobAccepted,
    Replay,
    Template,
    WebhookEndpoint,
)
from .uploads import Document, UploadFacts

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

SourceFormat = Literal["text", "html", "markdown", "json", "office"]
"""``office``: a Word, Excel, PowerPoint, OpenDocument or RTF file, told by its content."""
PdfVariant = Literal["pdf/a-2b", "pdf/a-3b", "pdf/ua-1"]
"""A standard the converted PDF conforms to (``pdf/ua-1``: of Office files, text documents
only)."""
OcrTier = Literal["simple", "advanced", "vision", "auto"]
OcrOutput = Literal["simple", "detailed", "searchable_pdf", "hocr", "alto", "markdown"]
JobStatus = Literal["pending", "processing", "complete", "failed", "cancelled"]

RETRIED_STATUSES = frozenset({429, 503})
MAX_RETRY_WAIT = 60.0
"""Seconds; the longest ``Retry-After`` the client waits out instead of raising."""


@dataclass(frozen=True)
class JobFilters:
    """What a job list may be narrowed to, besides its status; all given must hold."""

    cursor: str | None = None
    """A previous page's ``next_cursor``."""
    operation: str | None = None
    """``convert``, ``ocr.simple``, ``ocr.advanced``, ``ocr.vision``, ``ocr.auto`` or
    ``extract``."""
    created_after: datetime | None = None
    created_before: datetime | None = None
    file_name: str | None = None
    """The start of the uploaded file's name (or all of it)."""

    def params(self) -> dict[str, str | None]:
        return {
            "cursor": self.cursor,
            "operation": self.operation,
            "created_after": None if self.created_after is None else self.created_after.isoformat(),
            "created_before": (
                None if self.created_before is None else self.created_before.isoformat()
            ),
            "file_name": self.file_name,
        }


def refuse_finished(job: JobDetail) -> None:
    """``cancel``'s check: a finished job is left alone (``delete`` erases it)."""
    if job.status in ("complete", "failed"):
        raise JobFinished(409, "job_finished", f"Job {job.job_id!r} is already {job.status}.")


@dataclass(frozen=True)
class Call(Generic[T]):
    request: httpx.Request
    read: Callable[[httpx.Response], T]


def checked(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise error_of(response)
    return response


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate(checked(response).json())


def _listed(model: type[M], key: str) -> Callable[[httpx.Response], list[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    return lambda response: list(adapter.validate_python(checked(response).json()[key]))


def _nothing(response: httpx.Response) -> None:
    checked(response)


def _bytes(response: httpx.Response) -> bytes:
    return checked(response).content


def retry_delay(response: httpx.Response, retries_left: int) -> float | None:
    """Seconds to wait before sending the request again, or None to give its answer."""
    if response.status_code not in RETRIED_STATUSES or retries_left <= 0:
        return None
    value = response.headers.get("Retry-After")
    if value is None:  # a quota, not a rate: trying again later would not help
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return None if seconds > MAX_RETRY_WAIT else max(seconds, 0.0)


def _upload(document: Document, file_name: str | None) -> tuple[str, bytes, str]:
    if isinstance(document, Path):
        name, content = file_name or document.name, document.read_bytes()
    else:
        name, content = file_name or "document", document
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return name, content, content_type


def _form(**fields: str | None) -> dict[str, str]:
    return {name: value for name, value in fields.items() if value is not None}


Parts = tuple[dict[str, str], dict[str, tuple[str, bytes, str]] | None]
"""A request's form fields and its file part, if any."""


def document_parts(
    document: Document | None,
    file_name: str | None,
    source_url: str | None,
    upload_id: str | None,
) -> Parts:
    """The form of one document: an uploaded ``file``, or a reference the server reads
    (``source_url``: an https or ``s3://`` URL; ``upload_id``: a direct upload's)."""
    given = sum(part is not None for part in (document, source_url, upload_id))
    if given != 1:
        raise ValueError("Give one document: a path or bytes, source_url= or upload_id=.")
    if document is None:
        return _form(source_url=source_url, upload_id=upload_id), None
    return {}, {"file": _upload(document, file_name)}


class Requests:
    """Builds every call of the API for one server and key."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"X-API-Key": api_key}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Request:
        return httpx.Request(method, self.base_url + path, headers=self.headers, **kwargs)

    def events_url(self, job_id: str) -> str:
        return f"{self.base_url}/api/v1/jobs/{job_id}/events"

    # --- processing --------------------------------------------------------------------------

    def convert(
        self,
        document: Document | None,
        source_format: SourceFormat,
        file_name: str | None,
        pdf_variant: PdfVariant | None = None,
        source_url: str | None = None,
        upload_id: str | None = None,
    ) -> Call[JobAccepted]:
        path = f"/api/v1/convert/{source_format}-to-pdf"
        default_name = None if isinstance(document, Path) else _default_name(source_format)
        fields, files = document_parts(document, file_name or default_name, source_url, upload_id)
        request = self.request(
            "POST",
            path,
            params={"async": "true"},
            data={**fields, **_form(pdf_variant=pdf_variant)},
            files=files,
        )
        return Call(request, _model(JobAccepted))

    def ocr(
        self,
        document: Document | None,
        tier: OcrTier,
        output: OcrOutput,
        pages: str | None,
        language: str | None,
        file_name: str | None,
        confidence_threshold: float | None = None,
        source_url: str | None = None,
        upload_id: str | None = None,
    ) -> Call[JobAccepted]:
        threshold = None if confidence_threshold is None else str(confidence_threshold)
        fields, files = document_parts(document, file_name, source_url, upload_id)
        request = self.request(
            "POST",
            f"/api/v1/ocr/extract/{tier}",
            params={"async": "true"},
            files=files,
            data={
                **fields,
                **_form(
                    output=output, pages=pages, language=language, confidence_threshold=threshold
                ),
            },
        )
        return Call(request, _model(JobAccepted))

    def parse(
        self,
        document: Document | None,
        template_id: str,
        language: str | None,
        webhook_url: str | None,
        file_name: str | None,
        source_url: str | None = None,
        upload_id: str | None = None,
    ) -> Call[ParseJobAccepted]:
        fields, files = document_parts(document, file_name, source_url, upload_id)
        request = self.request(
            "POST",
            "/v1/documents/parse/async",
            files=files,
            data={
                **fields,
                **_form(templateId=template_id, language=language, webhookUrl=webhook_url),
            },
        )
        return Call(request, _model(ParseJobAccepted))

    def submit_batch(
        self,
        documents: Sequence[Document],
        operation: str,
        parameters: Mapping[str, str],
        idempotency_key: str | None,
        source_urls: Sequence[str] = (),
        upload_ids: Sequence[str] = (),
    ) -> Call[Batch]:
        """``operation`` is a processing route's path after ``/api/v1/``, such as
        ``convert/markdown-to-pdf`` or ``ocr/extract/simple``; ``source_urls`` and
        ``upload_ids`` name documents as a route's ``source_url`` and ``upload_id`` do."""
        files = [
            ("files", _upload(document, None if isinstance(document, Path) else f"document-{n}"))
            for n, document in enumerate(documents)
        ]
        data: dict[str, str | list[str]] = {"operation": operation, **parameters}
        if source_urls:
            data["source_urls"] = list(source_urls)
        if upload_ids:
            data["upload_ids"] = list(upload_ids)
        request = self.request("POST", "/api/v1/batches", data=data, files=files or None)
        if idempotency_key:
            request.headers["Idempotency-Key"] = idempotency_key
        return Call(request, _model(Batch))

    def get_batch(self, batch_id: str) -> Call[Batch]:
        return Call(self.request("GET", f"/api/v1/batches/{batch_id}"), _model(Batch))

    def cancel_batch(self, batch_id: str) -> Call[Batch]:
        return Call(self.request("DELETE", f"/api/v1/batches/{batch_id}"), _model(Batch))

    # --- direct uploads and what the server takes --------------------------------------------

    def create_upload(self, facts: UploadFacts) -> Call[DirectUpload]:
        body = {"file_name": facts.file_name, "size": facts.size}
        request = self.request(
            "POST", "/api/v1/uploads", json={**body, "content_type": facts.content_type}
        )
        return Call(request, _model(DirectUpload))

    def capabilities(self) -> Call[Capabilities]:
        return Call(self.request("GET", "/api/v1/capabilities"), _model(Capabilities))

    # --- jobs --------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Call[JobDetail]:
        return Call(self.request("GET", f"/api/v1/jobs/{job_id}"), _model(JobDetail))

    def list_jobs(self, status: JobStatus | None, limit: int, filters: JobFilters) -> Call[JobList]:
        params = _form(status=status, limit=str(limit), **filters.params())
        return Call(self.request("GET", "/api/v1/jobs", params=params), _model(JobList))

    def delete_job(self, job_id: str) -> Call[None]:
        """Cancels an unfinished job, erases a finished one."""
        return Call(self.request("DELETE", f"/api/v1/jobs/{job_id}"), _nothing)

    def job_result(self, job_id: str) -> Call[bytes]:
        return Call(self.request("GET", f"/api/v1/jobs/{job_id}/result"), _bytes)

    # --- templates ---------------------------------------------------------------------------

    def create_template(self, spec: Mapping[str, Any]) -> Call[Template]:
        return Call(self.request("POST", "/v1/templates", json=dict(spec)), _model(Template))

    def list_templates(self) -> Call[list[Template]]:
        return Call(self.request("GET", "/v1/templates"), _listed(Template, "templates"))

    def get_template(self, template_id: str) -> Call[Template]:
        return Call(self.request("GET", f"/v1/templates/{template_id}"), _model(Template))

    def update_template(self, template_id: str, spec: Mapping[str, Any]) -> Call[Template]:
        request = self.request("PUT", f"/v1/templates/{template_id}", json=dict(spec))
        return Call(request, _model(Template))

    def delete_template(self, template_id: str) -> Call[None]:
        return Call(self.request("DELETE", f"/v1/templates/{template_id}"), _nothing)

    # --- webhooks ----------------------------------------------------------------------------

    def create_webhook(
        self, url: str, events: list[str] | None, description: str
    ) -> Call[CreatedWebhookEndpoint]:
        body: dict[str, Any] = {"url": url, "description": description}
        if events is not None:
            body["events"] = events
        request = self.request("POST", "/v1/webhooks", json=body)
        return Call(request, _model(CreatedWebhookEndpoint))

    def list_webhooks(self) -> Call[list[WebhookEndpoint]]:
        return Call(self.request("GET", "/v1/webhooks"), _listed(WebhookEndpoint, "webhooks"))

    def get_webhook(self, endpoint_id: str) -> Call[WebhookEndpoint]:
        request = self.request("GET", f"/v1/webhooks/{endpoint_id}")
        return Call(request, _model(WebhookEndpoint))

    def update_webhook(
        self,
        endpoint_id: str,
        url: str | None,
        events: Sequence[str] | None,
        description: str | None,
    ) -> Call[WebhookEndpoint]:
        body: dict[str, Any] = _form(url=url, description=description)
        if events is not None:
            body["events"] = list(events)
        request = self.request("PATCH", f"/v1/webhooks/{endpoint_id}", json=body)
        return Call(request, _model(WebhookEndpoint))

    def delete_webhook(self, endpoint_id: str) -> Call[None]:
        return Call(self.request("DELETE", f"/v1/webhooks/{endpoint_id}"), _nothing)

    def webhook_deliveries(
        self, endpoint_id: str, limit: int, cursor: str | None
    ) -> Call[DeliveryPage]:
        params = _form(limit=str(limit), cursor=cursor)
        request = self.request("GET", f"/v1/webhooks/{endpoint_id}/deliveries", params=params)
        return Call(request, _model(DeliveryPage))

    def replay_webhook_delivery(self, endpoint_id: str, delivery_id: str) -> Call[Replay]:
        path = f"/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay"
        return Call(self.request("POST", path), _model(Replay))

    def job_deliveries(self, job_id: str) -> Call[list[Delivery]]:
        request = self.request("GET", f"/v1/jobs/{job_id}/deliveries")
        return Call(request, _listed(Delivery, "deliveries"))

    def replay_job_delivery(self, job_id: str, delivery_id: str) -> Call[Replay]:
        path = f"/v1/jobs/{job_id}/deliveries/{delivery_id}/replay"
        return Call(self.request("POST", path), _model(Replay))


def _default_name(source_format: SourceFormat) -> str:
    if source_format == "office":
        return "document"  # its kind is read from its content; a name claims none
    return f"document.{'md' if source_format == 'markdown' else source_format}"


@dataclass
class EventReader:
    """Reads a job's Server-Sent Events line by line; tells when the terminal one came."""

    last_id: str | None = None
    _event: str = ""

    def feed(self, line: str) -> bool:
        """True once the line ends the terminal event."""
        if line.startswith("id:"):
            self.last_id = line[3:].strip()
        elif line.startswith("event:"):
            self._event = line[6:].strip()
        elif not line:
            ended, self._event = self._event == "end", ""
            return ended
        return False
