"""The backend interface the API talks to, free of HTTP types."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from docjobs.auth.keys import KeyStore
from docjobs.config import JobSettings
from docjobs.domain.models import InputRef, Job, JobSpec, Operation, Phase
from docjobs.templates.store import TemplateStore
from docjobs.webhooks.records import WebhookStore


@dataclass(frozen=True)
class Submission:
    tenant: str
    operation: Operation
    source: Path
    """A temporary file the backend copies into its object store; the caller deletes it."""
    file_name: str
    content_type: str
    sha256: str
    size: int
    page_count: int | None
    interactive: bool
    fingerprint: str
    webhook_url: str | None = None


def new_job_id() -> str:
    return f"job_{secrets.token_hex(12)}"


def job_spec(
    submission: Submission,
    job_id: str,
    input_key: str,
    jobs: JobSettings,
    bucket: str | None = None,
) -> JobSpec:
    """The spec of a new job: the submission, where its input now is, the job settings."""
    return JobSpec(
        job_id=job_id,
        tenant=submission.tenant,
        operation=submission.operation,
        input=InputRef(
            key=input_key,
            bucket=bucket,
            file_name=submission.file_name,
            content_type=submission.content_type,
            sha256=submission.sha256,
            size=submission.size,
            page_count=submission.page_count,
        ),
        retry_policy=jobs.retry,
        timeout_seconds=jobs.timeout_seconds,
        ttl_seconds_after_finished=jobs.ttl_seconds,
        interactive=submission.interactive,
        fingerprint=submission.fingerprint,
        webhook_url=submission.webhook_url,
        created_at=datetime.now(UTC),
    )


class Backend(Protocol):
    @property
    def keys(self) -> KeyStore: ...

    @property
    def templates(self) -> TemplateStore: ...

    @property
    def webhooks(self) -> WebhookStore: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def ready(self) -> bool: ...

    async def submit(self, submission: Submission) -> tuple[Job, bool]:
        """The new job and True, or the original job of a duplicate submission and False."""
        ...

    async def get(self, tenant: str, job_id: str) -> Job | None:
        """The tenant's job, an expired one included (``job.expired``), or None."""
        ...

    async def list_jobs(
        self, tenant: str, phases: Iterable[Phase] | None, limit: int
    ) -> tuple[list[Job], int]: ...

    async def cancel(self, tenant: str, job_id: str) -> Job | None: ...

    async def wait(self, job_id: str, timeout: float) -> Job:
        """The job once terminal, or as it stands when ``timeout`` seconds have passed."""
        ...

    def iter_result(self, job: Job) -> Iterator[bytes]: ...

    def read_json_result(self, job: Job, limit: int) -> object:
        """A finished job's JSON result, if it has one of at most ``limit`` bytes."""
        ...

    def phase_counts(self) -> dict[Phase, int]: ...
