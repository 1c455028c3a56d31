"""Sync requests on warm runner workers in the API process, as fast as embedded mode.

A sync request that finds a worker free still becomes a DocumentJob (listed, idempotent,
visible in both API families), created with this process's claim on it (see
:mod:`docjobs.kube.claims`), so the operator starts no runner Job for it. This process
writes the status itself, through the same lifecycle and bookkeeping as the operator, and
renews the claim while the work runs. If the process dies, the claim lapses and the
operator takes the job over; the outcome the worker stored wins there too. The job's end
event is left to the operator, which delivers it from the outbox the terminal status write
puts in the status (see :mod:`docjobs.kube.outbox`): one deliverer, durable whichever process
dies. Running a claimed job is :mod:`.held`'s, shared with the worker pods (:mod:`.workers`);
the end of an attempt that succeeded answers the waiting request while the status write
that completes the job is on its way (:mod:`.ending`), its result opened meanwhile
(:mod:`.opened`).

A claimed job counts against its tenant's cap (``max_running_per_tenant``) like a runner
Job: a tenant already running as many jobs as its cap gets no claim, and its sync request
waits for the operator as an async one would. The workers' scratch directories live under
this host's temp directory, one per worker, removed with it and swept at start.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections import Counter
from pathlib import Path

from docjobs.backends.dependencies import DependencyMonitor
from docjobs.backends.workers import scratch
from docjobs.backends.workers.pool import WorkerPool
from docjobs.config import Settings
from docjobs.domain.clock import utcnow
from docjobs.domain.lifecycle import Observation, RunnerExited
from docjobs.domain.models import EXIT_OK, Job, Phase
from docjobs.kube.cache import WatchCache
from docjobs.kube.claims import Claim
from docjobs.kube.client import JSON, KubeClient
from docjobs.kube.resources import resource_name
from docjobs.storage.factory import store_environment

from .ending import PendingEnds
from .held import HeldJobs
from .opened import OpenedResults

SCRATCH_FOLDER = "docjobs-attempts"
"""Under the temp directory: the claimed workers' scratch directories, of every process."""


class ClaimedJobs:
    def __init__(
        self,
        settings: Settings,
        client: KubeClient,
        jobs: WatchCache[Job],
        monitor: DependencyMonitor,
        results: OpenedResults | None = None,
    ) -> None:
        """``results``: where the results of attempts that succeeded are opened ahead of
        the request waiting for them (see :mod:`.opened`)."""
        kube = settings.kubernetes
        self.settings = settings
        self.jobs = jobs
        self.size = kube.sync_workers
        self.claim_seconds = kube.claim_seconds
        self.holder = f"{socket.gethostname()}/{os.getpid()}"
        env = store_environment(settings, {**os.environ, "DOCJOBS_BACKEND": "kubernetes"})
        self.scratch_root = Path(tempfile.gettempdir()) / SCRATCH_FOLDER
        self.pool = WorkerPool(
            self.size, settings.runner.max_jobs_per_worker, env, scratch_root=self.scratch_root
        )
        self.results = results
        self.ends = PendingEnds()
        """The ends of this process's claimed jobs whose status write is on its way."""
        self.held = HeldJobs(
            client,
            kube.namespace,
            jobs,
            monitor,
            self.pool,
            self.claim,
            attempt_ended=self._attempt_ended,
            ends=self.ends,
        )
        self._reserved = 0
        self._unstarted: Counter[str] = Counter()
        """Claims reserved per tenant whose jobs are not yet created and running."""

    def claim(self) -> Claim:
        """This process's claim on a job, from now."""
        return Claim(self.holder, utcnow(), self.claim_seconds)

    async def start(self) -> None:
        # Other API processes may share this host's temp directory: only the directories of
        # processes that are gone are swept.
        await asyncio.to_thread(scratch.sweep, self.scratch_root, shared=True)
        await self.pool.warm_up()

    async def stop(self) -> None:
        """Stops the work and hands it to the operator at once, rather than after a lapse;
        the end writes of requests already answered are let land first."""
        await self.ends.settled()
        await self.held.stop()

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
            held = self.held.of_tenant(tenant)
            if len(processing | held) + self._unstarted[tenant] >= cap:
                return None
            if self._reserved >= self.size:  # taken while this one counted
                return None
        self._reserved += 1
        self._unstarted[tenant] += 1
        return self.claim()

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
        self._forget_unstarted(created["spec"]["tenant"])
        self.held.run(created, done=self._ran)

    def _attempt_ended(self, ended: Observation) -> None:
        if not isinstance(ended, RunnerExited) or ended.exit_code != EXIT_OK:
            return
        if ended.summary.result is not None and self.results is not None:
            self.results.open(ended.summary.result)

    def _ran(self) -> None:
        self._reserved -= 1
