"""The webhook delivery log and its replays, over any backend.

Both backends keep a job's settled deliveries beside the job (SQLite rows, or the
DocumentJob's ``status.webhooks`` and then its archived record), so the log is read through
the job listing: an endpoint's deliveries are the tenant's jobs, newest first, that have one
to it (a job ends once, so it has at most one per target). A batch's ``batch.completed``
is kept beside the batch (SQLite rows under its id, or its journal in the object store), so
the log also reads the tenant's completed batches, newest created first, and merges both
listings by creation time; the cursor is a position in either (creation time and id). A
page scans at most :data:`SCAN_JOBS` jobs and :data:`SCAN_BATCHES` batches; it may hold
fewer deliveries than asked and still have a next page.

Replays rebuild the message from the job (:meth:`Backend.event_data`) or from the batch and
its final counts (``completed_event_data``), and hand it to
:class:`~docjobs.webhooks.replay.Replays`; the try is recorded by the backend's webhook
store (``record_replay``), or beside the batch (``Backend.record_batch_replay``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from docjobs.backends.base import Backend, JobQuery, ListPosition, listing_position
from docjobs.domain.batches import completed_event_data
from docjobs.webhooks.delivery import DeliveryAttempt, Network
from docjobs.webhooks.fanout import Target
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.records import DeliveryRecord, WebhookStore
from docjobs.webhooks.replay import (
    ReplayRefused,
    ReplayRequest,
    Replays,
    find_delivery,
    parse_delivery_id,
)

SCAN_JOBS = 300
"""Jobs one page of an endpoint's log reads at most."""
JOBS_PER_READ = 100
SCAN_BATCHES = 100
"""Completed batches one page of an endpoint's log reads at most (one read each)."""
BATCHES_PER_READ = 25
BATCH_PREFIX = "bat_"
Positioned = tuple[ListPosition, DeliveryRecord]
"""A delivery, with the listing position of its job or batch."""


@dataclass(frozen=True)
class Read:
    """What one listing (jobs, or batches) gave for a page."""

    found: list[Positioned]
    end: ListPosition | None
    """Where it stopped reading, when more may follow; None once it was read to its end."""


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[DeliveryRecord]
    after: ListPosition | None
    """Where the page ends (a job's or a batch's position), when more may follow: the next
    page starts after it."""


@dataclass(frozen=True)
class ReplayOutcome:
    record: DeliveryRecord
    """The delivery with the replay's try added, or as it stood when the wait ended."""
    attempt: DeliveryAttempt | None
    """The replay's try; None while it is still under way (recorded once it ends)."""


class DeliveryLog:
    """One API process's view of the log, and its replays."""

    def __init__(
        self, backend: Backend, settings: WebhookSettings, network: Network | None = None
    ) -> None:
        self.backend = backend
        self.replays = Replays(settings, network)

    @property
    def store(self) -> WebhookStore:
        return self.backend.webhooks

    def close(self) -> None:
        self.replays.close()

    async def of_job(self, tenant: str, job_id: str) -> list[DeliveryRecord] | None:
        """The job's settled deliveries; None when the tenant has no such job."""
        job = await self.backend.get(tenant, job_id)
        if job is None or job.expired:
            return None
        return await self.backend.offload(self.store.deliveries, job_id)

    async def of_endpoint(
        self, tenant: str, endpoint_id: str, limit: int, after: ListPosition | None
    ) -> DeliveryPage | None:
        """A page of the endpoint's deliveries, newest job or batch first; None when the
        tenant has no such endpoint."""
        if await self.backend.offload(self.store.get, tenant, endpoint_id) is None:
            return None
        of_jobs = await self._of_jobs(tenant, endpoint_id, limit, after)
        of_batches = await self._of_batches(tenant, endpoint_id, limit, after)
        return _merged((of_jobs, of_batches), limit)

    async def _of_jobs(
        self, tenant: str, endpoint_id: str, limit: int, after: ListPosition | None
    ) -> Read:
        """Up to ``limit`` deliveries of the tenant's jobs to the endpoint, after ``after``."""
        found: list[Positioned] = []
        scanned = 0
        while scanned < SCAN_JOBS:
            page = await self.backend.list_jobs(JobQuery(tenant, JOBS_PER_READ, after=after))
            if not page.jobs:
                return Read(found, None)
            ended = [j.spec.job_id for j in page.jobs if j.status.phase.terminal and not j.expired]
            # Read right after the page: in Kubernetes mode an archived job's deliveries are
            # at hand only for a few seconds after its record was read.
            records = await self.backend.offload(_deliveries_to, self.store, ended, endpoint_id)
            for job in page.jobs:
                scanned += 1
                after = listing_position(job)
                if job.spec.job_id in records:
                    found.append((after, records[job.spec.job_id]))
                if len(found) >= limit:
                    more = page.more or job is not page.jobs[-1]
                    return Read(found, after if more else None)
            if not page.more:
                return Read(found, None)
        return Read(found, after)

    async def _of_batches(
        self, tenant: str, endpoint_id: str, limit: int, after: ListPosition | None
    ) -> Read:
        """Up to ``limit`` deliveries of the tenant's completed batches to the endpoint."""
        found: list[Positioned] = []
        scanned = 0
        while scanned < SCAN_BATCHES:
            batches = await self.backend.completed_batches(tenant, BATCHES_PER_READ, after)
            for batch in batches:
                scanned += 1
                after = batch.created_at.timestamp(), batch.batch_id
                for record in await self.backend.batch_deliveries(batch):
                    if record.target == endpoint_id:
                        found.append((after, record))
                if len(found) >= limit:
                    return Read(found, after)
            if len(batches) < BATCHES_PER_READ:
                return Read(found, None)
        return Read(found, after)

    async def replay(
        self,
        tenant: str,
        delivery_id: str,
        wait_seconds: float,
        *,
        endpoint_id: str | None = None,
        job_id: str | None = None,
    ) -> ReplayOutcome | None:
        """Send the delivery's message again; None when the tenant has no such delivery (to
        ``endpoint_id``, or of ``job_id``). Waits up to ``wait_seconds`` for the answer; the
        try goes on past that, and is recorded when it ends. Raises ``ReplayRefused``."""
        parsed = parse_delivery_id(delivery_id)
        if parsed is None or (job_id is not None and parsed[0] != job_id):
            return None
        if parsed[0].startswith(BATCH_PREFIX):
            if job_id is not None:
                return None  # a batch's delivery is no job's
            request = await self._batch_replay(tenant, *parsed, endpoint_id)
        else:
            request = await self._job_replay(tenant, *parsed, endpoint_id)
        if request is None:
            return None
        running = asyncio.wrap_future(self.replays.start(request))
        # Past the wait nobody awaits it: its failure is logged by the replay itself.
        running.add_done_callback(lambda done: done.cancelled() or done.exception())
        with contextlib.suppress(TimeoutError):
            attempt, updated = await asyncio.wait_for(asyncio.shield(running), wait_seconds)
            return ReplayOutcome(updated, attempt)
        return ReplayOutcome(request.record, None)

    async def _job_replay(
        self, tenant: str, job_id: str, webhook_id: str, endpoint_id: str | None
    ) -> ReplayRequest | None:
        """The message of the job's delivery, rebuilt from the job, to send again."""
        job = await self.backend.get(tenant, job_id)
        if job is None or job.expired or job.status.completed_at is None:
            return None
        records = await self.backend.offload(self.store.deliveries, job.spec.job_id)
        record = find_delivery(records, webhook_id, endpoint_id)
        if record is None:
            return None
        return ReplayRequest(
            tenant,
            record,
            await self._target(tenant, record),
            await self.backend.event_data(job),
            job.status.completed_at,
            lambda attempt: self.store.record_replay(
                tenant, record.job_id, record.target, record.event_type, attempt
            ),
        )

    async def _batch_replay(
        self, tenant: str, batch_id: str, webhook_id: str, endpoint_id: str | None
    ) -> ReplayRequest | None:
        """The message of the batch's ``batch.completed`` delivery, rebuilt from the batch
        (its final counts are kept with it), to send again."""
        state = await self.backend.get_batch(tenant, batch_id)
        if state is None:
            return None
        batch, completed_at = state.batch, state.batch.completed_at
        if completed_at is None:
            return None
        records = await self.backend.batch_deliveries(batch)
        record = find_delivery(records, webhook_id, endpoint_id)
        if record is None:
            return None
        return ReplayRequest(
            tenant,
            record,
            await self._target(tenant, record),
            completed_event_data(state),
            completed_at,
            lambda attempt: self.backend.record_batch_replay(batch, record.target, attempt),
        )

    async def _target(self, tenant: str, record: DeliveryRecord) -> Target:
        """Where the replay goes, signed with what: the endpoint as it is now, or the job's
        own URL with the tenant's job-URL secret. Raises ``ReplayRefused`` when the
        endpoint was removed."""
        if not _is_url(record.target):
            endpoint = await self.backend.offload(self.store.get, tenant, record.target)
            secret = await self.backend.offload(self.store.endpoint_secret, tenant, record.target)
            if endpoint is None or secret is None:
                raise ReplayRefused(
                    404, "webhook_not_found", f"The endpoint {record.target!r} no longer exists."
                )
            return Target(endpoint.id, endpoint.url, secret)
        secret = await self.backend.offload(self.store.tenant_secret, tenant)
        return Target(record.target, record.target, secret)


def _merged(reads: tuple[Read, ...], limit: int) -> DeliveryPage:
    """One page of several listings read from the same position, newest first. A listing
    that stopped early (``Read.end``) has not read what lies past that point: the page ends
    at the newest such point, and the next one starts after it."""
    ends = [read.end for read in reads if read.end is not None]
    bound = max(ends) if ends else None
    found = sorted((item for read in reads for item in read.found), key=lambda i: i[0])
    found.reverse()
    if bound is not None:
        found = [item for item in found if item[0] >= bound]
    if len(found) > limit:
        found = found[:limit]
        return DeliveryPage([record for _, record in found], found[-1][0])
    return DeliveryPage([record for _, record in found], bound)


def _deliveries_to(
    store: WebhookStore, job_ids: list[str], target: str
) -> dict[str, DeliveryRecord]:
    """Each job's delivery to ``target``, by job id, for the jobs that have one (blocking)."""
    found = {}
    for job_id in job_ids:
        for record in store.deliveries(job_id):
            if record.target == target:
                found[job_id] = record
    return found


def _is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))
