"""DocumentJobs this process runs under its own claim, on its warm runner workers.

Two kinds of process hold claims: an API pod on the sync jobs it creates already claimed
(:mod:`.claimed`), and a ``docjobs workers`` pod on pending jobs it claims from the watch
cache (:mod:`.workers`). Once a job is claimed, both run it the same way, here: the status
is written through the same lifecycle step and bookkeeping as the operator's
(:func:`~docjobs.domain.step.take_step`), the claim is renewed every third of its duration
while the work runs, and the worker is killed as soon as the job is cancelled or ended by
someone else. A non-terminal end (a retry) or a failure here releases the claim, so the
operator carries on at once; if the process dies, the claim lapses and the operator takes
the job over, where the outcome the worker stored wins. The end event is left to the
operator, which delivers it from the outbox the terminal status write puts in the status.
An API pod learns the end of an attempt that succeeded as that write is sent, not once it
has landed (:mod:`.ending`): its waiting sync request need not wait for the round trip.

With a :class:`~docjobs.backends.workers.batcher.DocumentBatcher` (worker pods of the GPU
image), docTR attempts are read in batches with the other held docTR jobs instead, pages
of several documents in one forward pass; a cancelled job stops waiting for its batch, and
the batch goes on for its neighbours (what it stores for the cancelled one is ignored:
the job has ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from docjobs.backends.dependencies import KUBERNETES, DependencyMonitor
from docjobs.backends.workers.batcher import DocumentBatcher
from docjobs.backends.workers.pool import Worker, WorkerPool, run_attempt
from docjobs.domain import lifecycle
from docjobs.domain.clock import utcnow
from docjobs.domain.lifecycle import Decision, Observation
from docjobs.domain.models import Job, JobStatus, Phase, WorkerRequest, batchable
from docjobs.domain.step import Conflict, Given, Reading, take_step
from docjobs.kube.cache import WatchCache
from docjobs.kube.claims import Claim, claim_of, released
from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import DocumentJobStatus, job_of, status_of
from docjobs.kube.status import bookkeep, status_patch
from docjobs.metrics import record_finished

from .ending import PendingEnds, completed_by

log = logging.getLogger("docjobs.claimed")

WRITE_TRIES = 5
"""Status steps tried on conflicts (a renewal or the operator wrote in between)."""
RELEASE_SECONDS = 2.0
"""Seconds a stopping process gives each release of a claim; unreleased ones lapse."""


@dataclass
class Held:
    """One claimed job while it runs: its latest resource, and the worker running it."""

    resource: JSON
    worker: Worker | None = None
    finished: bool = False
    """Set before the claim's holder is cancelled: a cancellation that ``wait_for`` swallows
    (it can, when the awaited event fires at the same moment) still ends it."""
    abandoned: bool = False
    """Set while the attempt its worker runs, not the one the status records, is stopped:
    its worker is killed, or never starts."""
    batch: asyncio.Future[Observation] | None = None
    """Its attempt's answer while it is read in a batch (cancelled: it waits no more)."""

    def stop_attempt(self) -> None:
        """Stops its attempt: the worker killed, or its wait for a batch given up."""
        if self.worker is not None:
            self.worker.kill()
        if self.batch is not None:
            self.batch.cancel()

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
        if version_of(resource) >= version_of(self.resource):
            self.resource = resource


@dataclass
class _HeldStatus:
    """A claimed job's status subresource as a step's :class:`~docjobs.domain.step.Ledger`,
    written by merge patch on condition of the ``resourceVersion`` read. Called in a thread:
    the client is synchronous."""

    held: Held
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

    held: Held

    def stop_runner(self, record: JSON, job: Job) -> None:
        self.held.stop_attempt()

    def notify(self, record: JSON, job: Job) -> None:
        record_finished(job)

    def expire(self, record: JSON, job: Job) -> None:
        """Never decided here: this process observes no time passing on finished jobs."""


class HeldJobs:
    """The jobs this process holds claims on, each run in a task of its own."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        jobs: WatchCache[Job],
        monitor: DependencyMonitor,
        pool: WorkerPool,
        claim: Callable[[], Claim],
        workers: int = 0,
        attempt_ended: Callable[[Observation], None] | None = None,
        batcher: DocumentBatcher | None = None,
        ends: PendingEnds | None = None,
    ) -> None:
        """``claim``: a fresh claim of this process, for renewals. ``workers``: how many held
        jobs run at once, the others waiting (started) for a free worker; 0: no bound, the
        caller holds no more jobs than the pool has workers. ``attempt_ended``: told how an
        attempt ended, as the status write that records it is sent. ``batcher``: reads the
        docTR attempts in batches on the pool's workers (outside the ``workers`` bound).
        ``ends``: where the end of an attempt that succeeded is announced while the status
        write that records it is on its way (see :mod:`.ending`)."""
        self.client = client
        self.namespace = namespace
        self.jobs = jobs
        self.monitor = monitor
        self.pool = pool
        self.claim = claim
        self.attempt_ended = attempt_ended
        self.batcher = batcher
        self.ends = ends
        self._held: dict[str, Held] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._free: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Semaphore(workers) if workers else contextlib.nullcontext()
        )

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, name: object) -> bool:
        return name in self._held

    def on_worker(self, name: str) -> bool:
        """Whether a worker runs the held job ``name`` now (its attempt has started)."""
        held = self._held.get(name)
        return held is not None and held.worker is not None

    def of_tenant(self, tenant: str) -> set[str]:
        """Names of the held jobs of ``tenant``."""
        return {name for name, held in self._held.items() if held.tenant == tenant}

    def run(self, resource: JSON, done: Callable[[], None] | None = None) -> None:
        """Runs the job ``resource`` (claimed by this process) in the background; ``done``
        is called once its task is over, however it ended."""
        held = Held(resource)
        self._held[held.name] = held
        task = asyncio.create_task(self._run(held), name=f"claimed-{held.name}")
        self._tasks.add(task)

        def over(_: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._held.pop(held.name, None)
            if done is not None:
                done()

        task.add_done_callback(over)

    async def drain(self, timeout: float) -> None:
        """Waits up to ``timeout`` seconds for the running jobs to end."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def stop(self) -> None:
        """Stops the work and hands it to the operator at once, rather than after a lapse;
        the pool's workers are killed with their attempts."""
        names = list(self._held)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pool.close()
        if self.batcher is not None:  # its batches ended with the workers
            await self.batcher.close()
        for name in names:
            try:
                await asyncio.wait_for(self._patch(name, released()), RELEASE_SECONDS)
            except Exception as exc:  # it lapses instead
                log.warning("cannot release the claim on %s: %s", name, exc)

    async def _run(self, held: Held) -> None:
        holding = asyncio.create_task(self._hold(held), name=f"claim-{held.name}")
        running: asyncio.Task[Observation | None] | None = None
        try:
            started = lifecycle.AttemptStarted(utcnow())
            # The worker starts while the write that records its attempt is on its way, not
            # after it: the write is a round trip to the API server that the attempt need not
            # wait for. Should the write decide otherwise, the worker is stopped; what it may
            # have stored is the outcome of the same attempt of the same job, which wins only
            # if that attempt is recorded later (by the operator, once the claim lapsed).
            expected = _started(held.resource, started)
            if expected is not None:
                running = asyncio.create_task(self._attempt(held, expected))
            await self._write(held, started)
            job = job_of(held.resource)
            ours = claim_of(held.resource) is not None
            if running is not None and not (ours and _same_attempt(job, expected)):
                await _abandon(held, running)
                running = None
            if not ours:
                return  # no longer ours
            if job.status.phase is not Phase.PROCESSING:
                # Not started (cancelled, or its backoff not over after all): the operator
                # carries on at once, rather than after the claim's lapse.
                await self._patch(held.name, released())
                return
            if running is None:
                running = asyncio.create_task(self._attempt(held, job))
            ended = await running
            if ended is None:
                return
            if self.attempt_ended is not None:
                self.attempt_ended(ended)
            announced = self._announce(held, ended)
            try:
                await self._write(held, ended)
            finally:
                if announced:
                    assert self.ends is not None
                    self.ends.landed(held.name)
            if not job_of(held.resource).status.phase.terminal:
                await self._patch(held.name, released())  # the operator retries it
        except Exception:  # the operator takes the job over: now, or once the claim lapses
            log.exception("%s: running the claimed job failed; releasing it", held.name)
            await _abandon(held, running)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._patch(held.name, released()), RELEASE_SECONDS)
        finally:
            await _abandon(held, running)
            held.finished = True
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding

    def _announce(self, held: Held, ended: Observation) -> bool:
        """Announces to :attr:`ends` the end ``ended`` brings the job to, if it completes the
        job from an outcome the worker stored and nobody cancelled or ended the job
        meanwhile (as this process knows); whether it did."""
        if self.ends is None or self._stopped(held.name):
            return False
        end = completed_by(job_of(held.resource), ended)
        if end is not None:
            self.ends.announce(held.name, end)
        return end is not None

    async def _attempt(self, held: Held, job: Job) -> Observation | None:
        """How the started attempt of ``job`` ended on a warm worker, once one is free;
        None when the job was cancelled while it waited for one."""
        request = WorkerRequest(spec=job.spec, attempt=job.status.attempts)
        if self.batcher is not None and batchable(request):
            return await self._batched(held, request, job.spec.timeout_seconds)
        async with self._free:
            held.worker = await self.pool.acquire()
            try:
                if held.abandoned or self._stopped(held.name):
                    self.pool.release(held.worker)
                    return None
                return await run_attempt(self.pool, held.worker, request, job.spec.timeout_seconds)
            finally:
                held.worker = None

    async def _batched(
        self, held: Held, request: WorkerRequest, timeout: float
    ) -> Observation | None:
        """How ``request``'s attempt ended in a batch; None when the job was cancelled or
        ended by someone else before (the batch goes on without waiting for it)."""
        assert self.batcher is not None
        if held.abandoned or self._stopped(held.name):
            return None
        answer = asyncio.ensure_future(self.batcher.run(request, timeout))
        held.batch = answer
        try:
            await asyncio.wait({answer})
        finally:
            held.batch = None
            answer.cancel()  # this task was cancelled: the batch goes on without it
        return None if answer.cancelled() else answer.result()

    async def _hold(self, held: Held) -> None:
        """Renews the claim every third of its duration, and stops the worker as soon as
        the job is cancelled (the operator writes that) or ended."""
        loop = asyncio.get_running_loop()
        interval = self.claim().seconds / 3
        renew_at = loop.time() + interval
        with self.jobs.subscribe(held.name) as changed:
            while not held.finished:
                changed.clear()
                if self._stopped(held.name):
                    held.stop_attempt()
                if (remaining := renew_at - loop.time()) <= 0:
                    renew_at = loop.time() + interval
                    await self._renew(held)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)

    def _stopped(self, name: str) -> bool:
        """Whether the job ``name`` was cancelled or ended by someone else, as the watch
        cache has it."""
        job = self.jobs.get(name)
        return job is None or job.cancel_requested or job.status.phase.terminal

    async def _renew(self, held: Held) -> None:
        try:
            renewal = {"metadata": {"annotations": self.claim().annotations()}}
            held.saw(await self._patch(held.name, renewal))
        except Exception as exc:  # the next renewal may get through before the lapse
            log.warning("%s: cannot renew the claim: %s", held.name, exc)

    async def _patch(self, name: str, body: JSON) -> JSON:
        path = documentjobs_path(self.namespace, name)
        return await self.monitor.call(KUBERNETES, self.client.merge_patch, path, body)

    async def _write(self, held: Held, observation: Observation) -> None:
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


def version_of(resource: JSON) -> int:
    """A resource's ``resourceVersion`` as a number (0 when it is not one)."""
    text = resource["metadata"].get("resourceVersion") or "0"
    return int(text) if text.isdigit() else 0


def _started(resource: JSON, started: lifecycle.AttemptStarted) -> Job | None:
    """The job as ``started`` would start an attempt of it, as ``resource`` stands; None
    when it would not start one."""
    job = job_of(resource)
    decided = lifecycle.decide(job.spec, job.status, started).status
    if decided.phase is not Phase.PROCESSING or decided.attempts == job.status.attempts:
        return None
    return job.model_copy(update={"status": decided})


def _same_attempt(job: Job, expected: Job | None) -> bool:
    """Whether ``job`` runs the attempt ``expected`` was started as."""
    return (
        expected is not None
        and job.status.phase is Phase.PROCESSING
        and job.status.attempts == expected.status.attempts
    )


async def _abandon(held: Held, running: asyncio.Task[Observation | None] | None) -> None:
    """Stops the attempt ``running`` runs for ``held`` (if it still runs), and waits for it."""
    if running is None or running.done():
        return
    held.abandoned = True
    held.stop_attempt()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await running
    held.abandoned = False  # over: an attempt started after it may run
