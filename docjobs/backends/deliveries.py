"""The webhook delivery log and its replays, over any backend.

Both backends keep a job's settled deliveries beside the job (SQLite rows, or the
DocumentJob's ``status.webhooks`` and then its archived record), so the log is read through
the job listing: an endpoint's deliveries are the tenant's jobs, newest first, that have one
to it (a job ends once, so it has at most one per target). A page scans at most
:data:`SCAN_JOBS` jobs; it may hold fewer deliveries than asked while ``more`` is true.

Replays rebuild the message from the job (:meth:`Backend.event_data`) and hand it to
:class:`~docjobs.webhooks.replay.Replays`; the try is recorded by the backend's webhook
store (``record_replay``).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from docjobs.backends.base import Backend, JobQuery, ListPosition, listing_position
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


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[DeliveryRecord]
    after: ListPosition | None
    """The last job the page read, when more may follow: the next page starts after it."""


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
        """A page of the endpoint's deliveries, newest job first; None when the tenant has no
        such endpoint."""
        if await self.backend.offload(self.store.get, tenant, endpoint_id) is None:
            return None
        found: list[DeliveryRecord] = []
        scanned = 0
        while scanned < SCAN_JOBS:
            page = await self.backend.list_jobs(JobQuery(tenant, JOBS_PER_READ, after=after))
            if not page.jobs:
                return DeliveryPage(found, None)
            ended = [j.spec.job_id for j in page.jobs if j.status.phase.terminal and not j.expired]
            # Read right after the page: in Kubernetes mode an archived job's deliveries are
            # at hand only for a few seconds after its record was read.
            records = await self.backend.offload(_deliveries_to, self.store, ended, endpoint_id)
            for job in page.jobs:
                scanned += 1
                after = listing_position(job)
                if job.spec.job_id in records:
                    found.append(records[job.spec.job_id])
                if len(found) >= limit:
                    more = page.more or job is not page.jobs[-1]
                    return DeliveryPage(found, after if more else None)
            if not page.more:
                return DeliveryPage(found, None)
        return DeliveryPage(found, after)

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
        job = await self.backend.get(tenant, parsed[0])
        if job is None or job.expired or job.status.completed_at is None:
            return None
        records = await self.backend.offload(self.store.deliveries, job.spec.job_id)
        record = find_delivery(records, parsed[1], endpoint_id)
        if record is None:
            return None
        target = await self._target(tenant, record)
        if target is None:
            raise ReplayRefused(
                404, "webhook_not_found", f"The endpoint {record.target!r} no longer exists."
            )
        request = ReplayRequest(
            tenant,
            record,
            target,
            await self.backend.event_data(job),
            job.status.completed_at,
            lambda attempt: self.store.record_replay(
                tenant, record.job_id, record.target, record.event_type, attempt
            ),
        )
        running = asyncio.wrap_future(self.replays.start(request))
        # Past the wait nobody awaits it: its failure is logged by the replay itself.
        running.add_done_callback(lambda done: done.cancelled() or done.exception())
        with contextlib.suppress(TimeoutError):
            attempt, updated = await asyncio.wait_for(asyncio.shield(running), wait_seconds)
            return ReplayOutcome(updated, attempt)
        return ReplayOutcome(record, None)

    async def _target(self, tenant: str, record: DeliveryRecord) -> Target | None:
        """Where the replay goes, signed with what: the endpoint as it is now, or the job's
        own URL with the tenant's job-URL secret."""
        if not _is_url(record.target):
            endpoint = await self.backend.offload(self.store.get, tenant, record.target)
            secret = await self.backend.offload(self.store.endpoint_secret, tenant, record.target)
            if endpoint is None or secret is None:
                return None
            return Target(endpoint.id, endpoint.url, secret)
        secret = await self.backend.offload(self.store.tenant_secret, tenant)
        return Target(record.target, record.target, secret)


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
