"""One exception class per error code of the API's error body."""

from __future__ import annotations

import httpx


class DocjobsError(Exception):
    """An answer of 4xx or 5xx: ``code`` and ``message`` from its error body."""

    code = "error"

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message


class BadRequest(DocjobsError):
    code = "bad_request"


class EmptyFile(DocjobsError):
    code = "empty_file"


class MissingFile(DocjobsError):
    code = "missing_file"


class InvalidLanguage(DocjobsError):
    code = "invalid_language"


class InvalidWebhook(DocjobsError):
    code = "invalid_webhook"


class InvalidWebhookUrl(DocjobsError):
    code = "invalid_webhook_url"


class UnsafeWebhookUrl(DocjobsError):
    code = "unsafe_webhook_url"


class MissingTemplateId(DocjobsError):
    code = "missing_template_id"


class InvalidApiKey(DocjobsError):
    code = "invalid_api_key"


class MissingApiKey(DocjobsError):
    code = "missing_api_key"


class NotFound(DocjobsError):
    code = "not_found"


class JobNotFound(DocjobsError):
    code = "job_not_found"


class JobExpired(DocjobsError):
    code = "job_expired"


class BatchNotFound(DocjobsError):
    code = "batch_not_found"


class TemplateNotFound(DocjobsError):
    code = "template_not_found"


class WebhookNotFound(DocjobsError):
    code = "webhook_not_found"


class DeliveryNotFound(DocjobsError):
    code = "delivery_not_found"


class ReplayInProgress(DocjobsError):
    """The delivery is being replayed already: one replay of a delivery at a time."""

    code = "replay_in_progress"


class TooManyReplays(DocjobsError):
    code = "too_many_replays"


class ReplayLimitReached(DocjobsError):
    """The delivery was tried as often as a delivery may be."""

    code = "replay_limit_reached"


class UnsafeSourceUrl(DocjobsError):
    """The ``source_url`` names an address the server may not fetch; the message says why."""

    code = "unsafe_source_url"


class SourceUnavailable(DocjobsError):
    code = "source_unavailable"


class SourceTimeout(DocjobsError):
    code = "source_timeout"


class SourceNotFound(DocjobsError):
    code = "source_not_found"


class SourceBucketNotAllowed(DocjobsError):
    code = "source_bucket_not_allowed"


class TooManyDocuments(DocjobsError):
    """More than one of a file, ``source_url`` and ``upload_id`` in one request."""

    code = "too_many_documents"


class UploadNotFound(DocjobsError):
    code = "upload_not_found"


class UploadExpired(DocjobsError):
    code = "upload_expired"


class UploadsUnavailable(DocjobsError):
    code = "uploads_unavailable"


class InvalidSignature(DocjobsError):
    """A direct upload's URL was refused: its signature is wrong or expired."""

    code = "invalid_signature"


class QuotaExceeded(DocjobsError):
    """The plan's monthly pages are used up; waiting a moment does not help."""

    code = "quota_exceeded"


class JobNotComplete(DocjobsError):
    code = "job_not_complete"


class JobFinished(DocjobsError):
    code = "job_finished"


class JobCancelled(DocjobsError):
    code = "job_cancelled"


class PayloadTooLarge(DocjobsError):
    code = "payload_too_large"


class TemplateTooLarge(DocjobsError):
    code = "template_too_large"


class TooManyFiles(DocjobsError):
    code = "too_many_files"


class UnsupportedMediaType(DocjobsError):
    code = "unsupported_media_type"


class InvalidParameters(DocjobsError):
    code = "invalid_parameters"


class RateLimited(DocjobsError):
    code = "rate_limited"


class TemplateQuotaExceeded(DocjobsError):
    code = "template_quota_exceeded"


class ProcessingFailed(DocjobsError):
    code = "processing_failed"


class DependencyUnavailable(DocjobsError):
    code = "dependency_unavailable"


class InternalError(DocjobsError):
    code = "internal_error"


class IdempotencyKeyReused(DocjobsError):
    """The Idempotency-Key was first sent with another document or other parameters."""

    code = "idempotency_key_reused"


class TooManyPages(DocjobsError):
    code = "too_many_pages"


class DocumentTooComplex(DocjobsError):
    code = "document_too_complex"


class PatternTooComplex(DocjobsError):
    code = "pattern_too_complex"


class TierUnavailable(DocjobsError):
    """The OCR tier or engine asked for is not set up on this server; the message says how."""

    code = "tier_unavailable"


_BY_CODE: dict[str, type[DocjobsError]] = {cls.code: cls for cls in DocjobsError.__subclasses__()}


def error_of(response: httpx.Response) -> DocjobsError:
    """The exception for an error answer; :class:`DocjobsError` itself for an unknown code."""
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "error", response.text[:500] or response.reason_phrase
    return _BY_CODE.get(code, DocjobsError)(response.status_code, code, message)
