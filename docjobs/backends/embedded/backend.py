"""Embedded backend: everything on one machine under the data directory."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterable, Iterator

from docjobs.backends.base import Submission, job_spec, new_job_id
from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.jobs import SQLiteJobStore
from docjobs.backends.embedded.keys import SQLiteKeyStore
from docjobs.backends.embedded.templates import SQLiteTemplateStore
from docjobs.backends.embedded.webhooks import SQLiteWebhookStore
from docjobs.config import Settings
from docjobs.domain.clock import utcnow
from docjobs.domain.events import EVENT_OF_PHASE, job_view
from docjobs.domain.models import Job, Phase
from docjobs.storage.base import object_keys
from docjobs.storage.local import LocalStore
from docjobs.webhooks.fanout import deliver_job_event
from docjobs.webhooks.records import PendingEvent

from .pool import WorkerPool
from .supervisor import Supervisor

WEBHOOK_RESULT_LIMIT = 256 * 1024
"""Bytes; JSON results up to this size travel inside the webhook payload."""


class EmbeddedBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        data_dir = settings.data_dir.resolve()
        self.db = SQLiteDatabase(data_dir / "docjobs.db")
        self.store = SQLiteJobStore(self.db)
        self.keys = SQLiteKeyStore(self.db)
        self.objects = LocalStore(data_dir / "objects")
        self.templates = SQLiteTemplateStore(self.db)
        self.webhooks = SQLiteWebhookStore(self.db)
        env = {**os.environ, "DOCJOBS_DATA_DIR": str(data_dir), "DOCJOBS_BACKEND": "embedded"}
        pool = WorkerPool(settings.runner.concurrency, settings.runner.max_jobs_per_worker, env)
        self.supervisor = Supervisor(
            settings,
            self.store,
            self.objects,
            pool,
            on_finished=self._announce,
            forget_before=self.webhooks.forget_deliveries,
        )

    async def start(self) -> None:
        await self.supervisor.start()
        for event in self.webhooks.pending():
            self._deliver(event)

    async def stop(self) -> None:
        await self.supervisor.stop()
        self.db.close()

    def ready(self) -> bool:
        return self.supervisor.alive

    async def submit(self, submission: Submission) -> tuple[Job, bool]:
        job_id = new_job_id()
        prefix, input_key = object_keys(submission.tenant, job_id)
        await asyncio.to_thread(
            self.objects.put_file, input_key, submission.source, submission.content_type
        )
        spec = job_spec(submission, job_id, input_key, self.settings.jobs)
        try:
            job, created = self.store.create(spec)
        except BaseException:
            self.objects.delete_prefix(prefix)
            raise
        if not created:
            self.objects.delete_prefix(prefix)
        self.supervisor.wake()
        return job, created

    async def get(self, tenant: str, job_id: str) -> Job | None:
        return self.store.get(job_id, tenant)

    async def list_jobs(
        self, tenant: str, phases: Iterable[Phase] | None, limit: int
    ) -> tuple[list[Job], int]:
        return self.store.list_jobs(tenant, phases, limit)

    async def cancel(self, tenant: str, job_id: str) -> Job | None:
        job = self.store.get(job_id, tenant)
        if job is None or job.expired or job.status.phase.terminal:
            return job
        return await self.supervisor.cancel(job_id)

    async def wait(self, job_id: str, timeout: float) -> Job:
        job = await self.supervisor.wait(job_id, timeout)
        assert job is not None
        return job

    def iter_result(self, job: Job) -> Iterator[bytes]:
        assert job.status.result is not None
        return self.objects.iter_chunks(job.status.result.key)

    def read_json_result(self, job: Job, limit: int) -> object:
        """A finished job's JSON result, if it has one of at most ``limit`` bytes."""
        result = job.status.result
        if result is None or result.content_type != "application/json" or result.size > limit:
            return None
        return json.loads(b"".join(self.objects.iter_chunks(result.key)))

    def _announce(self, job: Job) -> None:
        event_type = EVENT_OF_PHASE.get(job.status.phase)
        if event_type is None:
            return
        event = PendingEvent(
            job.spec.job_id,
            event_type,
            job.spec.tenant,
            job_view(job, self.read_json_result(job, WEBHOOK_RESULT_LIMIT)),
            job.spec.webhook_url,
            job.status.completed_at or utcnow(),
        )
        # In the outbox first: a delivery the process dies in is resumed on the next start.
        self.webhooks.enqueue(event)
        self._deliver(event)

    def _deliver(self, event: PendingEvent) -> None:
        def run() -> None:
            deliver_job_event(
                self.webhooks,
                self.settings.webhooks,
                event.tenant,
                event.job_id,
                event.event_type,
                event.data,
                event.webhook_url,
                occurred_at=event.occurred_at,
            )
            self.webhooks.sent(event)

        # Deliveries retry for minutes; they must hold up neither the loop nor shutdown.
        threading.Thread(target=run, name=f"webhook-{event.job_id}", daemon=True).start()

    def phase_counts(self) -> dict[Phase, int]:
        return self.store.count_by_phase()
