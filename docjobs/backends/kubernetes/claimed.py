"""Sync requests on warm runner workers in the API process, as fast as embedded mode.

A sync request that finds a worker free still becomes a DocumentJob (listed, idempotent,
visible in both API families), created with this process's claim on it (see
:mod:`docjobs.kube.claims`), so the operator starts no runner Job for it. This process
writes the status itself, through the same lifecycle and bookkeeping as the operator, and
renews the claim while the work runs. If the process dies, the claim lapses and the
operator takes the job over; the outcome the worker stored wins there too. The job's end
event is left to the operator, which delivers it from the outbox the terminal status write
puts in the status (see :mod:`docjobs.kube.outbox`): one deliverer, durable whichever process dies.

A claimed job counts against its tenant's cap (``max_running_per_tenant``) like a runner
Job: a tenant already running as many jobs as its cap gets no claim, and its sync request
waits for the operator as an async one would. The workers' scratch directories live under
this host's temp directory, one per worker, removed with it and swept at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from docjobs.backends.dependencies import KUBERNETES, DependencyMonitor
from docjobs.backends.workers import scratch
from docjobs.backends.workers.pool import Worker, WorkerPool, run_attempt
from docjobs.config import Settings
from docjobs.domain import lifecycle
from docjobs.domain.clock import utcnow
from docjobs.domain.lifecycle import Decision, Observation
from docjobs.domain.models import Job, JobStatus, Phase, WorkerRequest
from docjobs.domain.step import Conflict, Given, Reading, take_step
from docjobs.kube.cache import WatchCache
from docjobs.kube.claims import Claim, claim_of, released
from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import DocumentJobStatus, job_of, resource_name, status_of
from docjobs.kube.status import bookkeep, status_patch
from docjobs.metrics import record_finished
from docjobs.storage.factory import store_environment

log = logging.getLogger("docjobs.claimed")

WRITE_TRIES = 5
"""Status steps tried on conflicts (a renewal or the operator wrote in between)."""
RELEASE_SECONDS = 2.0
"""Seconds a stopping process gives each release of a claim; unreleased ones lapse."""
SCRATCH_FOLDER = "docjobs-attempts"
"""Under the temp directory: the claimed workers' scratch directories, of every process."""


@dataclass
class _Held:
    """One claimed job while it runs: its latest resource, and the worker running it."""

    resource: JSON
    worker: Worker | None = None
    finished: bool = False
    """Set before the claim's holder is cancelled: a cancellation that ``wait_for`` swallows
    (it can, when the awaited event fires at the same moment) still ends it."""

    @property
    def name(self) -> str:
        name: str = self.resource["metadata"]["name"]
        return name

    @property
    def tenant(self) -> str:
        tenant: str = self.resource["spec"]["tenant"]
        return tenant

    def saw(self, resource: JSON) -> None:
        """Keep the newest version of the resource a write returned."""
        if _version(resource) >= _version(self.resource):
            self.resource = resource


@dataclass
class _HeldStatus:
    """A claimed job's status subresource as a step's :class:`~docjobs.domain.step.Ledger`,
    written by merge patch on condition of the ``resourceVersion`` read. Called in a thread:
    the client is synchronous."""

    held: _Held
    client: KubeClient
    jobs: WatchCache[Job]
    path: str
    stale: bool = False
    """Set by a conflict: the next read asks the API server instead of the resource held."""

    def read(self) -> Reading[JSON, DocumentJobStatus]:
        if self.stale:
            self.held.saw(self.client.get(self.path))
            self.stale = False
        resource = self.held.resource
        return Reading(resource, job_of(resource), status_of(resource))

    def keep(
        self, reading: Reading[JSON, DocumentJobStatus], decided: JobStatus
    ) -> DocumentJobStatus:
        return bookkeep(reading.record, reading.job.spec, reading.stored, decided)

    def write(
        self,
        reading: Reading[JSON, DocumentJobStatus],
        status: DocumentJobStatus,
        decision: Decision,
    ) -> JSON:
        body = {
            "metadata": {"resourceVersion": reading.record["metadata"]["resourceVersion"]},
            "status": status_patch(reading.stored, status),
        }
        try:
            written = self.client.merge_patch(f"{self.path}/status", body)
        except KubeError as exc:
            if not exc.conflict:
                raise
            self.stale = True
            raise Conflict from exc
        self.held.saw(written)
        self.jobs.observe(written)
        return written


@dataclass(frozen=True)
class _HeldEffects:
    """What a claimed job's decisions do in this process. Its end event is the operator's to
    deliver (from the outbox the terminal write put in the status), and so is its expiry."""

    held: _Held

    def stop_runner(self, record: JSON, job: Job) -> None:
        if (worker := self.held.worker) is not None:
            worker.kill()

    def notify(self, record: JSON, job: Job) -> None:
        record_finished(job)

    def expire(self, record: JSON, job: Job) -> None:
        """Never decided here: this process observes no time passing on finished jobs."""


class ClaimedJobs:
    def __init__(
        self,
        settings: Settings,
        client: KubeClient,
        jobs: WatchCache[Job],
        monitor: DependencyMonitor,
    ) -> None:
        kube = settings.kubernetes
        self.settings = settings
        self.client = client
        self.namespace = kube.namespace
        self.jobs = jobs
        self.monitor = monitor
        self.size = kube.sync_workers
        self.claim_seconds = kube.claim_seconds
        self.holder = f"{socket.gethostname()}/{os.getpid()}"
        env = store_environment(settings, {**os.environ, "DOCJOBS_BACKEND": "kubernetes"})
        self.scratch_root = Path(tempfile.gettempdir()) / SCRATCH_FOLDER
        self.pool = WorkerPool(
            self.size, settings.runner.max_jobs_per_worker, env, scratch_root=self.scratch_root
        )
        self._reserved = 0
        self._unstarted: Counter[str] = Counter()
        """Claims reserved per tenant whose jobs are not yet created and running."""
        self._held: dict[str, _Held] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # Other API processes may share this host's temp directory: only the directories of
        # processes that are gone are swept.
        await asyncio.to_thread(scratch.sweep, self.scratch_root, shared=True)
        await self.pool.warm_up()

    async def stop(self) -> None:
        """Stops the work and hands it to the operator at once, rather than after a lapse."""
        names = list(self._held)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pool.close()
        for name in names:
            try:
                await asyncio.wait_for(self._patch(name, released()), RELEASE_SECONDS)
            except Exception as exc:  # it lapses instead
                log.warning("cannot release the claim on %s: %s", name, exc)

    async def reserve(self, tenant: str) -> Claim | None:
        """A claim for a job of ``tenant`` about to be created, if a worker is free for it
        and the tenant runs fewer jobs than its cap; give it back with :meth:`unreserve`
        unless :meth:`run` took it."""
        if self._reserved >= self.size:
            return None
        cap = self.settings.jobs.max_running_per_tenant
        if cap > 0:
            # A scan of every cached job: in a thread, off the loop.
            processing = await asyncio.to_thread(self._processing, tenant)
            held = {name for name, job in self._held.items() if job.tenant == tenant}
            if len(processing | held) + self._unstarted[tenant] >= cap:
                return None
            if self._reserved >= self.size:  # taken while this one counted
                return None
        self._reserved += 1
        self._unstarted[tenant] += 1
        return Claim(self.holder, utcnow(), self.claim_seconds)

    def unreserve(self, tenant: str) -> None:
        """Gives back a claim that :meth:`run` did not take (the create failed)."""
        self._reserved -= 1
        self._forget_unstarted(tenant)

    def _forget_unstarted(self, tenant: str) -> None:
        self._unstarted[tenant] -= 1
        if self._unstarted[tenant] <= 0:
            del self._unstarted[tenant]

    def _processing(self, tenant: str) -> set[str]:
        """The DocumentJobs of ``tenant`` that run now, as the watch cache knows them: runner
        Jobs and claimed jobs of every API process alike."""
        return {
            resource_name(job.spec.job_id)
            for job in self.jobs.values()
            if job.spec.tenant == tenant and job.status.phase is Phase.PROCESSING
        }

    def run(self, created: JSON) -> None:
        """Runs the job just created under a reserved claim, in the background: the request
        waits on the job as any sync request does, and may answer 202 before it ends."""
        held = _Held(created)
        self._held[held.name] = held
        self._forget_unstarted(held.tenant)
        task = asyncio.create_task(self._run(held), name=f"claimed-{held.name}")
        self._tasks.add(task)

        def done(_: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._held.pop(held.name, None)
            self._reserved -= 1

        task.add_done_callback(done)

    async def _run(self, held: _Held) -> None:
        holding = asyncio.create_task(self._hold(held), name=f"claim-{held.name}")
        try:
            await self._write(held, lifecycle.AttemptStarted(utcnow()))
            job = job_of(held.resource)
            if job.status.phase is not Phase.PROCESSING or claim_of(held.resource) is None:
                return  # cancelled meanwhile
            held.worker = await self.pool.acquire()
            request = WorkerRequest(spec=job.spec, attempt=job.status.attempts)
            timeout = job.spec.timeout_seconds
            ended = await run_attempt(self.pool, held.worker, request, timeout)
            held.worker = None
            await self._write(held, ended)
            if not job_of(held.resource).status.phase.terminal:
                await self._patch(held.name, released())  # the operator retries it
        except Exception:  # the operator takes the job over: now, or once the claim lapses
            log.exception("%s: running the claimed job failed; releasing it", held.name)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._patch(held.name, released()), RELEASE_SECONDS)
        finally:
            held.finished = True
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding

    async def _hold(self, held: _Held) -> None:
        """Renews the claim every third of its duration, and stops the worker as soon as
        the job is cancelled (the operator writes that) or ended."""
        loop = asyncio.get_running_loop()
        interval = self.claim_seconds / 3
        renew_at = loop.time() + interval
        with self.jobs.subscribe(held.name) as changed:
            while not held.finished:
                changed.clear()
                job = self.jobs.get(held.name)
                stopped = job is None or job.cancel_requested or job.status.phase.terminal
                if stopped and held.worker is not None:
                    held.worker.kill()
                if (remaining := renew_at - loop.time()) <= 0:
                    renew_at = loop.time() + interval
                    await self._renew(held)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)

    async def _renew(self, held: _Held) -> None:
        claim = Claim(self.holder, utcnow(), self.claim_seconds)
        try:
            renewal = {"metadata": {"annotations": claim.annotations()}}
            held.saw(await self._patch(held.name, renewal))
        except Exception as exc:  # the next renewal may get through before the lapse
            log.warning("%s: cannot renew the claim: %s", held.name, exc)

    async def _patch(self, name: str, body: JSON) -> JSON:
        path = documentjobs_path(self.namespace, name)
        return await self.monitor.call(KUBERNETES, self.client.merge_patch, path, body)

    async def _write(self, held: _Held, observation: Observation) -> None:
        """The lifecycle's decision on ``observation``, as one step
        (:func:`~docjobs.domain.step.take_step`) on the held status.

        The whole step, with a conflict's read and second write, is one call in a thread of
        the API server's pool: the client is synchronous, and the step is the operator's
        too, so it is not written a second time for the event loop. Like any such call, it
        is refused at once while the API server is known to be down."""
        path = documentjobs_path(self.namespace, held.name)
        ledger = _HeldStatus(held, self.client, self.jobs, path)
        choose, effects = Given(observation), _HeldEffects(held)
        await self.monitor.call(KUBERNETES, take_step, ledger, choose, effects, tries=WRITE_TRIES)


def _version(resource: JSON) -> int:
    text = resource["metadata"].get("resourceVersion") or "0"
    return int(text) if text.isdigit() else 0
