"""Embedded backend: everything on one machine under the data directory.

Files (inputs, results, attempt outcomes) go to the object store the settings choose: the
data directory's ``objects`` folder, or an S3 bucket when ``DOCJOBS_S3__ENDPOINT`` is set.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import date, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from docjobs.backends.base import (
    JobPage,
    JobQuery,
    ListPosition,
    Submission,
    job_spec,
    json_result,
    new_job_id,
    opened_result,
    store_input,
)
from docjobs.backends.dependencies import (
    DATABASE,
    OBJECT_STORE,
    WORKERS,
    DependencyMonitor,
    DependencyUnavailable,
)
from docjobs.backends.embedded.batches import SQLiteBatches
from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.jobs import SQLiteJobStore
from docjobs.backends.embedded.keys import SQLiteKeyStore
from docjobs.backends.embedded.templates import SQLiteTemplateStore
from docjobs.backends.embedded.usage import SQLiteUsage
from docjobs.backends.embedded.webhooks import SQLiteWebhookStore
from docjobs.backends.workers import scratch
from docjobs.backends.workers.pool import WorkerPool
from docjobs.config import Settings
from docjobs.domain.batches import BATCH_COMPLETED, Batch, BatchState
from docjobs.domain.clock import utcnow
from docjobs.domain.events import EVENT_OF_PHASE, job_view
from docjobs.domain.models import Job, Phase
from docjobs.storage.base import TEMPLATES_FOLDER, object_keys
from docjobs.storage.factory import runner_environment, store_environment, store_from_settings
from docjobs.storage.uploads import UPLOADS_FOLDER, sweep_expired
from docjobs.usage.counted import MonthUsage
from docjobs.usage.records import UsageRecord, count_in_metrics, usage_of
from docjobs.usage.retention import retained_from
from docjobs.webhooks.delivery import DeliveryAttempt
from docjobs.webhooks.driver import deliver_event
from docjobs.webhooks.fanout import targets_of
from docjobs.webhooks.queue import DeliveryQueue
from docjobs.webhooks.records import DeliveryRecord, PendingEvent

from .lock import DataDirectoryLock
from .supervisor import Supervisor

WEBHOOK_RESULT_LIMIT = 256 * 1024
"""Bytes; JSON results up to this size travel inside the webhook payload."""
ATTEMPTS_FOLDER = "attempts"
"""Under the data directory's ``tmp``: the runner workers' scratch directories."""

P = ParamSpec("P")
R = TypeVar("R")


class EmbeddedBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        data_dir = settings.data_dir.resolve()
        self.lock = DataDirectoryLock(data_dir)
        self.db = SQLiteDatabase(data_dir / "docjobs.db")
        self.store = SQLiteJobStore(self.db)
        self.keys = SQLiteKeyStore(self.db, settings.rate_limits.plans)
        self.objects = store_from_settings(settings)
        self.templates = SQLiteTemplateStore(self.db, settings.limits.template_bounds())
        self.webhooks = SQLiteWebhookStore(self.db)
        self.usage_records = SQLiteUsage(self.db)
        self.batches = SQLiteBatches(self.db, self.webhooks)
        self._batch_ends: dict[str, PendingEvent] = {}
        """A batch's end event, under the job whose end completed it (added in a step's
        thread, taken on the loop once that end has committed)."""
        self._untold: set[str] = set()
        """Jobs whose end had no webhook target when it committed (added in a step's thread,
        taken on the loop when the end is announced)."""
        # Every delivery's tries, and building each event's payload, on a fixed set of threads.
        self.deliveries = DeliveryQueue(settings.webhooks.max_parallel_deliveries)
        self.monitor = DependencyMonitor(
            {DATABASE: self._check_database, OBJECT_STORE: self.objects.prepare},
            threads=settings.server.dependency_threads,
            stall_seconds=settings.server.stall_seconds,
        )
        env = store_environment(
            settings, {**runner_environment(os.environ), "DOCJOBS_BACKEND": "embedded"}
        )
        pool = WorkerPool(
            settings.runner.concurrency,
            settings.runner.max_jobs_per_worker,
            env,
            scratch_root=data_dir / "tmp" / ATTEMPTS_FOLDER,
        )
        pool.torch_idle_seconds = settings.runner.torch_idle_seconds
        self.supervisor = Supervisor(
            settings,
            self.store,
            self.objects,
            pool,
            on_finished=self._ended,
            forget_before=self._forget_before,
            record_end=self._record_end,
        )

    async def start(self) -> None:
        # Before recovery touches a job: a second server must change nothing.
        self.lock.acquire()
        await asyncio.to_thread(self.objects.prepare)
        await asyncio.to_thread(self._sweep_leftovers)
        self.monitor.start()
        # Read before the supervisor starts: jobs it finishes while recovering are announced
        # by it, and must not be announced twice.
        stranded, unfilled = await asyncio.to_thread(self._undelivered)
        await self.supervisor.start()
        for event in stranded:
            self._deliver(event)
        for job in unfilled:
            self._announce(job)

    async def stop(self) -> None:
        self.monitor.stop()
        await self.supervisor.stop()
        self.deliveries.close()  # what it held stays in the outbox, resent on the next start
        self.db.close()
        self.lock.release()

    def _check_database(self) -> None:
        self.db.query("SELECT count(*) FROM sqlite_master")

    def dependencies(self) -> dict[str, str]:
        return {**self.monitor.report(), WORKERS: "ok" if self.supervisor.alive else "stopped"}

    async def offload(self, call: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.monitor.call(DATABASE, call, *args, **kwargs)

    async def submit(self, submission: Submission) -> tuple[Job, bool]:
        job_id = new_job_id()
        prefix, input_key = object_keys(submission.tenant, job_id)
        self.monitor.require(DATABASE, OBJECT_STORE)
        await self.monitor.call(OBJECT_STORE, store_input, self.objects, input_key, submission)
        spec = job_spec(submission, job_id, input_key, self.settings.jobs)
        try:
            job, created = await self.offload(self.store.create, spec)
        except DependencyUnavailable:
            raise  # a create given up on may still land: its input stays
        except BaseException:
            await asyncio.to_thread(self.objects.delete_prefix, prefix)
            raise
        if not created:
            await asyncio.to_thread(self.objects.delete_prefix, prefix)
        self.supervisor.wake()
        return job, created

    async def get(self, tenant: str, job_id: str) -> Job | None:
        # A poller's job, unchanged since its last read: from memory, without a thread hop.
        job = self.store.recent.get(job_id)
        if job is None:
            job = await self.offload(self.store.read, job_id)
        return job if job is not None and job.spec.tenant == tenant else None

    async def list_jobs(self, query: JobQuery) -> JobPage:
        return await self.offload(self.store.list_jobs, query)

    async def erase(self, job: Job) -> None:
        prefix, _ = object_keys(job.spec.tenant, job.spec.job_id)
        self.monitor.require(DATABASE, OBJECT_STORE)
        # The files first: should the store fail, the job is still there to erase again.
        await self.monitor.call(OBJECT_STORE, self.objects.delete_prefix, prefix)
        await self.offload(self.store.erase, job.spec.job_id, _forget_deliveries(job.spec.job_id))

    async def cancel(self, tenant: str, job_id: str) -> Job | None:
        job = await self.offload(self.store.get, job_id, tenant)
        if job is None or job.expired or job.status.phase.terminal:
            return job
        return await self.supervisor.cancel(job_id)

    async def wait(self, job_id: str, timeout: float) -> Job:
        job = await self.supervisor.wait(job_id, timeout)
        assert job is not None
        return job

    def watch(self, job_id: str) -> AbstractContextManager[asyncio.Event]:
        return self.supervisor.watching(job_id)

    async def open_result(self, job: Job, *, waited: bool = False) -> Iterator[bytes]:
        return await self.monitor.call(OBJECT_STORE, opened_result, self.objects, job)

    async def read_json_result(self, job: Job, limit: int) -> object:
        return await self.monitor.call(OBJECT_STORE, json_result, self.objects, job, limit)

    async def event_data(self, job: Job) -> dict[str, Any]:
        return await self.monitor.call(OBJECT_STORE, self._event_data, job)

    def _event_data(self, job: Job) -> dict[str, Any]:
        """The job's view with its JSON result, if small enough (a blocking read)."""
        return job_view(job, json_result(self.objects, job, WEBHOOK_RESULT_LIMIT))

    def _sweep_leftovers(self) -> None:
        """What a killed process leaves: half-saved uploads, and inputs stored for jobs whose
        row never committed (an input is stored first, so a job never lacks its input). At
        start nothing is being submitted, so neither can belong to a submission in progress.
        The objects' directory or bucket is this service's alone, as embedded mode requires.
        """
        sweep_scratch(self.settings.data_dir.resolve() / "tmp")
        known = self.store.job_ids()
        for tenant in list(self.objects.folders("")):
            sweep_expired(self.objects, tenant, utcnow())
            for job_id in list(self.objects.folders(tenant)):
                # Beside the jobs: the template versions (``.templates``), never swept, and
                # direct uploads (``.uploads``), which expire on their own.
                if job_id not in known and job_id not in (TEMPLATES_FOLDER, UPLOADS_FOLDER):
                    self.objects.delete_prefix(f"{tenant}/{job_id}")

    def _undelivered(self) -> tuple[list[PendingEvent], list[Job]]:
        """Events built but not delivered, and jobs whose end was recorded without its event
        built (the process died in between)."""
        unfilled = [job for job_id in self.webhooks.unfilled() if (job := self.store.get(job_id))]
        return self.webhooks.pending(), unfilled

    async def usage(self, tenant: str | None, first: date, last: date) -> list[UsageRecord]:
        return await self.offload(lambda: list(self.usage_records.records(tenant, first, last)))

    async def quota_month(self, tenant: str, first: date, last: date) -> MonthUsage:
        return await self.offload(self.usage_records.month, tenant, first)

    def _forget_before(self, cutoff: datetime) -> None:
        """The expiry sweep's deletions: deliveries recorded before ``cutoff``, completed
        batches past their TTL, and usage records past their retention."""
        self.webhooks.forget_deliveries(cutoff)
        self.batches.forget_expired(utcnow())
        kept_from = retained_from(self.settings.usage.retention_days, utcnow())
        self.usage_records.forget_before(kept_from)

    def _record_end(self, job: Job, conn: sqlite3.Connection) -> None:
        """What commits with a job's end: its webhook outbox entry, its usage record, and
        its batch's end if it was the batch's last job."""
        self._reserve_event(job, conn)
        SQLiteUsage.record(conn, usage_of(job))
        if job.spec.batch_id is not None:
            batch_end = self.batches.job_ended(job.spec.batch_id, conn)
            if batch_end is not None:
                self._batch_ends[job.spec.job_id] = batch_end

    def _ended(self, job: Job) -> None:
        count_in_metrics(usage_of(job), self.settings.usage.tenant_metrics)
        self._announce(job)
        batch_end = self._batch_ends.pop(job.spec.job_id, None)
        if batch_end is not None:
            self._deliver(batch_end)

    async def create_batch(self, batch: Batch) -> Batch:
        return await self.offload(self.batches.create, batch)

    async def seal_batch(self, batch: Batch, total: int) -> None:
        batch_end = await self.offload(self.batches.seal, batch.batch_id, total)
        if batch_end is not None:
            self._deliver(batch_end)

    async def get_batch(self, tenant: str, batch_id: str) -> BatchState | None:
        return await self.offload(self.batches.get, tenant, batch_id)

    async def completed_batches(
        self, tenant: str, limit: int, after: ListPosition | None
    ) -> list[Batch]:
        return await self.offload(self.batches.completed, tenant, limit, after)

    async def batch_deliveries(self, batch: Batch) -> list[DeliveryRecord]:
        # Recorded under the batch's id, as a job's deliveries are under its own.
        return await self.offload(self.webhooks.deliveries, batch.batch_id)

    def record_batch_replay(
        self, batch: Batch, target: str, attempt: DeliveryAttempt
    ) -> DeliveryRecord | None:
        return self.webhooks.record_replay(
            batch.tenant, batch.batch_id, target, BATCH_COMPLETED, attempt
        )

    def _reserve_event(self, job: Job, conn: sqlite3.Connection) -> None:
        event_type = EVENT_OF_PHASE.get(job.status.phase)
        if event_type is None:
            return
        # Read in the end's transaction, which holds the write lock: no endpoint is added or
        # removed between this answer and the end's commit.
        tenant = job.spec.tenant
        if not job.spec.webhook_url and not self.webhooks.subscribed(tenant, event_type, conn):
            # Nobody to tell: no outbox entry, and no event to build once the end commits.
            self._untold.add(job.spec.job_id)
        else:
            # Left by an end whose transaction then rolled back, it would silence this one.
            self._untold.discard(job.spec.job_id)
            self.webhooks.reserve(
                conn,
                job.spec.job_id,
                event_type,
                job.spec.tenant,
                job.spec.webhook_url,
                job.status.completed_at or utcnow(),
            )

    def _announce(self, job: Job) -> None:
        event_type = EVENT_OF_PHASE.get(job.status.phase)
        if event_type is None or _taken(self._untold, job.spec.job_id):
            return

        def build() -> None:
            # Reading the result may be an S3 request: on a delivery thread, not the loop.
            event = PendingEvent(
                job.spec.job_id,
                event_type,
                job.spec.tenant,
                self._event_data(job),
                job.spec.webhook_url,
                job.status.completed_at or utcnow(),
                job.spec.traceparent,
            )
            # In the outbox first: a delivery the process dies in is resumed on the next start.
            self.webhooks.enqueue(event)
            self._queue(event)

        self.deliveries.submit(build)

    def _deliver(self, event: PendingEvent) -> None:
        self.deliveries.submit(lambda: self._queue(event))

    def _queue(self, event: PendingEvent) -> None:
        """Each target's tries on the delivery queue; the outbox entry goes once all are
        settled."""
        deliver_event(
            self.deliveries,
            self.settings.webhooks,
            self.webhooks.journal(event.job_id, event.event_type),
            event,
            targets_of(self.webhooks, event.tenant, event.event_type, event.webhook_url),
            on_settled=lambda: self.webhooks.sent(event),
        )

    def phase_counts(self) -> dict[Phase, int]:
        return self.store.count_by_phase()


def _taken(items: set[str], item: str) -> bool:
    """Whether ``item`` was in ``items``, which no longer holds it."""
    if item in items:
        items.discard(item)
        return True
    return False


def _forget_deliveries(job_id: str) -> Callable[[sqlite3.Connection], None]:
    """What the job's webhook deliveries recorded (their targets, answers and errors), erased
    with the job."""

    def forget(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM webhook_deliveries WHERE job_id = ?", (job_id,))
        conn.execute("DELETE FROM webhook_tries WHERE job_id = ?", (job_id,))

    return forget


def sweep_scratch(directory: Path) -> None:
    """Deletes uploads a killed process left half-saved, and its workers' scratch directories
    (tenants' inputs and OCR text of attempts that never ended): at start, neither is in use."""
    for leftover in directory.glob("upload-*"):
        leftover.unlink(missing_ok=True)
    scratch.sweep(directory / ATTEMPTS_FOLDER, shared=False)
