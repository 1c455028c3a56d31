"""The backend interface the API talks to, free of HTTP types."""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from docjobs.auth.keys import KeyStore
from docjobs.config import JobSettings
from docjobs.domain.batches import Batch, BatchState
from docjobs.domain.models import InputRef, Job, JobSpec, Operation, Phase
from docjobs.storage.base import ObjectStore
from docjobs.storage.templates import save_template_version
from docjobs.templates.store import TemplateStore
from docjobs.usage.counted import MonthUsage
from docjobs.usage.records import UsageRecord
from docjobs.webhooks.delivery import DeliveryAttempt
from docjobs.webhooks.records import DeliveryRecord, WebhookStore

P = ParamSpec("P")
R = TypeVar("R")


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
    traceparent: str | None = None
    """The submitting request's trace context (W3C), kept with the job."""
    batch_id: str | None = None


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
        traceparent=submission.traceparent,
        batch_id=submission.batch_id,
        created_at=datetime.now(UTC),
    )


ListPosition = tuple[float, str]
"""Where a job stands in a tenant's listing: its creation time (a POSIX timestamp) and id.
Listings run newest first, ties broken by the id, descending."""


def listing_position(job: Job) -> ListPosition:
    return job.spec.created_at.timestamp(), job.spec.job_id


@dataclass(frozen=True)
class JobQuery:
    """One page of a tenant's jobs: those that pass every filter given, after ``after``."""

    tenant: str
    limit: int
    phases: frozenset[Phase] | None = None
    operation: str | None = None
    """An operation's kind (``convert``, ``ocr.simple``...)."""
    created_after: datetime | None = None
    """Exclusive, as is ``created_before``."""
    created_before: datetime | None = None
    file_name: str | None = None
    """A prefix of the uploaded file's name (the whole name matches too), case-sensitive."""
    after: ListPosition | None = None
    """The last job of the previous page: this page starts with the next older one."""
    batch_id: str | None = None
    """Only the jobs of this batch."""

    def matches(self, job: Job) -> bool:
        """Whether ``job`` passes the filters (not the tenant, nor the position)."""
        spec = job.spec
        created = spec.created_at
        return (
            (self.phases is None or job.status.phase in self.phases)
            and (self.operation is None or spec.operation.kind == self.operation)
            and (self.created_after is None or created > self.created_after)
            and (self.created_before is None or created < self.created_before)
            and (self.file_name is None or spec.input.file_name.startswith(self.file_name))
            and (self.batch_id is None or spec.batch_id == self.batch_id)
        )


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    total: int
    """Every job of the tenant that passes the query's filters, on any page."""
    more: bool
    """Older jobs that pass the filters follow the page's last one."""


def encode_cursor(position: ListPosition) -> str:
    """An opaque token for the page after ``position``."""
    raw = json.dumps([position[0], position[1]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> ListPosition:
    """The position ``encode_cursor`` made the token of; ``ValueError`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError("not a cursor this API gave") from exc
    if not isinstance(created, int | float) or not isinstance(job_id, str):
        raise ValueError("not a cursor this API gave")
    return float(created), job_id


def store_input(objects: ObjectStore, key: str, submission: Submission) -> int:
    """Copies the submission's file to ``key``, and stores the template version an extract
    job runs with if it is new (blocking); the file's size."""
    save_template_version(objects, submission.tenant, submission.operation)
    return objects.put_file(key, submission.source, submission.content_type)


def json_result(objects: ObjectStore, job: Job, limit: int) -> object:
    """A finished job's JSON result, if it has one of at most ``limit`` bytes (blocking)."""
    result = job.status.result
    if result is None or result.content_type != "application/json" or result.size > limit:
        return None
    return json.loads(b"".join(objects.iter_chunks(result.key)))


def opened_result(objects: ObjectStore, job: Job) -> Iterator[bytes]:
    """``open_result``'s blocking part: the first chunk read, then the rest as they come."""
    assert job.status.result is not None
    chunks = objects.iter_chunks(job.status.result.key)
    first = next(chunks, None)
    return chunks if first is None else itertools.chain((first,), chunks)


class Backend(Protocol):
    @property
    def keys(self) -> KeyStore: ...

    @property
    def templates(self) -> TemplateStore: ...

    @property
    def webhooks(self) -> WebhookStore: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def dependencies(self) -> dict[str, str]:
        """Each service the backend relies on, with ``ok`` or why it is down."""
        ...

    async def offload(self, call: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``call`` (a method of ``keys``, ``templates`` or ``webhooks``: they block) in a
        worker thread, so the event loop keeps serving. Raises ``DependencyUnavailable``
        when what the store lives in is down, at once rather than after client timeouts."""
        ...

    async def submit(self, submission: Submission) -> tuple[Job, bool]:
        """The new job and True, or the original job of a duplicate submission and False."""
        ...

    async def get(self, tenant: str, job_id: str) -> Job | None:
        """The tenant's job, an expired one included (``job.expired``), or None."""
        ...

    async def list_jobs(self, query: JobQuery) -> JobPage:
        """A page of the tenant's jobs, newest first, read through an index of the tenant's
        jobs by creation time (never a scan of every tenant's)."""
        ...

    async def cancel(self, tenant: str, job_id: str) -> Job | None: ...

    async def erase(self, job: Job) -> None:
        """Deletes a finished job for good: its input, result and attempt records in the
        object store, then the job itself; it then reads as unknown. Raises
        ``DependencyUnavailable`` with nothing deleted from the job store when the object
        store cannot be reached, so that the erasure can be asked for again."""
        ...

    async def wait(self, job_id: str, timeout: float) -> Job:
        """The job once terminal, or as it stands when ``timeout`` seconds have passed."""
        ...

    def watch(self, job_id: str) -> AbstractContextManager[asyncio.Event]:
        """While open: an event set each time the job may have changed (its status or its
        progress). The watcher clears it before it reads the job again."""
        ...

    async def open_result(self, job: Job, *, waited: bool = False) -> Iterator[bytes]:
        """A finished job's result bytes, the object already opened: a store that cannot
        serve it raises here (``DependencyUnavailable`` for an outage), before any answer
        has begun; the rest is read as the iterator is (a blocking read). ``waited``: the
        reader is the sync request that waited for the job, which may take a result opened
        ahead for it; any other reader opens the object itself."""
        ...

    async def read_json_result(self, job: Job, limit: int) -> object:
        """A finished job's JSON result, if it has one of at most ``limit`` bytes."""
        ...

    async def event_data(self, job: Job) -> dict[str, Any]:
        """The payload of a finished job's end event, as its webhook deliveries sent it (a
        replay sends it again)."""
        ...

    async def usage(self, tenant: str | None, first: date, last: date) -> list[UsageRecord]:
        """The usage records of ``tenant`` (None: every tenant's) of the jobs that ended
        from day ``first`` to day ``last`` (UTC, both included), each job's once."""
        ...

    async def quota_month(self, tenant: str, first: date, last: date) -> MonthUsage:
        """The tenant's month from day ``first`` to today (``last``) as its page quota
        counts it: its recorded pages, and its jobs not among those records (not ended, or
        ended since they were read), each job once; no scan of the cluster or the store
        beyond what ``usage`` reads."""
        ...

    async def create_batch(self, batch: Batch) -> Batch:
        """Records a new batch, unsealed; the batch already recorded under its id if any."""
        ...

    async def seal_batch(self, batch: Batch, total: int) -> None:
        """Sets the number of the batch's jobs once they have all been submitted; from then
        on the end of its last job completes it (at once if they have all ended)."""
        ...

    async def get_batch(self, tenant: str, batch_id: str) -> BatchState | None:
        """The tenant's batch with its jobs counted by phase, or None."""
        ...

    async def completed_batches(
        self, tenant: str, limit: int, after: ListPosition | None
    ) -> list[Batch]:
        """Up to ``limit`` of the tenant's completed batches, newest created first, from the
        first one after ``after`` (creation time and batch id, as jobs list)."""
        ...

    async def batch_deliveries(self, batch: Batch) -> list[DeliveryRecord]:
        """The settled deliveries of a completed batch's ``batch.completed``."""
        ...

    def record_batch_replay(
        self, batch: Batch, target: str, attempt: DeliveryAttempt
    ) -> DeliveryRecord | None:
        """Add a replay's try to the batch's settled delivery to ``target`` (blocking); the
        record as it now stands, None when it is gone."""
        ...

    def phase_counts(self) -> dict[Phase, int]: ...
