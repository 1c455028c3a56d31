"""Runs embedded jobs: starts attempts on warm workers, feeds outcomes to ``lifecycle``.

Every change of a job's status goes through :meth:`Supervisor.observe`, which runs on the
event loop without awaiting between reading and writing the job, so two observations of one
job never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from docjobs.backends.embedded.jobs import SQLiteJobStore
from docjobs.config import Settings
from docjobs.documents import plan_parts
from docjobs.domain import fairshare, lifecycle
from docjobs.domain.clock import utcnow
from docjobs.domain.lifecycle import Action, Observation
from docjobs.domain.models import Extract, Job, Phase, Progress, RunOutcome, WorkerRequest
from docjobs.metrics import record_finished
from docjobs.storage.base import ObjectNotFound, ObjectStore, outcome_key
from docjobs.storage.templates import save_template_version

from .paged import PagedAttempt
from .pool import Worker, WorkerPool, run_attempt

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        store: SQLiteJobStore,
        objects: ObjectStore,
        pool: WorkerPool,
        on_finished: Callable[[Job], None] = lambda job: None,
        forget_before: Callable[[datetime], object] = lambda cutoff: None,
        record_end: Callable[[Job, sqlite3.Connection], None] = lambda job, conn: None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.objects = objects
        self.pool = pool
        self.on_finished = on_finished
        self.forget_before = forget_before
        """Drops records that outlive their jobs (webhook deliveries) older than a cutoff."""
        self.record_end = record_end
        """Writes what must commit with a job's end (its webhook outbox entry)."""
        self.running: dict[str, asyncio.Task[None]] = {}
        self._tenant_of: dict[str, str] = {}
        """The tenant of each running job, for fair shares and the per-tenant cap."""
        self._turns: dict[str, int] = {}
        """When each tenant last had a job started (a count of starts), for taking turns."""
        self._turn = 0
        self.runner_pids: dict[str, int] = {}
        self._workers: dict[str, Worker] = {}
        self._paged: dict[str, PagedAttempt] = {}
        """Attempts read in parts, by job; their extra parts hold ``_extra`` workers."""
        self._extra: set[asyncio.Task[None]] = set()
        self._waiters: defaultdict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._watchers: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0

    # --- life of the supervisor ------------------------------------------------------------

    async def start(self) -> None:
        await self.recover()
        await self.pool.warm_up()
        self._loop_task = asyncio.create_task(self._loop(), name="docjobs-supervisor")

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        tasks = [*self.running.values(), *self._extra]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.pool.close()

    @property
    def alive(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def recover(self) -> None:
        """After a restart: attempts that finished are recorded, the others start again."""
        now = utcnow()
        interrupted = self.store.in_phase(Phase.PROCESSING)
        # Outcomes may be S3 objects: read in a thread, then observed on the loop.
        outcomes = await asyncio.to_thread(lambda: [self._recorded_outcome(j) for j in interrupted])
        for job, outcome in zip(interrupted, outcomes, strict=True):
            if outcome is not None:
                self.observe(
                    job.spec.job_id, lifecycle.RunnerExited(outcome.exit_code, outcome.summary, now)
                )
            else:
                self.observe(job.spec.job_id, lifecycle.RunnerLost("service restarted", now))

    def wake(self) -> None:
        self._wake.set()

    # --- status changes ----------------------------------------------------------------------

    def observe(self, job_id: str, observation: Observation) -> Job | None:
        job = self.store.get(job_id)
        if job is None:
            return None
        decision = lifecycle.decide(job.spec, job.status, observation)
        if decision.status != job.status:
            job = job.model_copy(update={"status": decision.status})
            # A job's end and its outbox entry commit together: a crash loses neither.
            finishing = Action.NOTIFY in decision.actions
            record = functools.partial(self.record_end, job) if finishing else None
            self.store.save_status(job_id, decision.status, also=record)
            self._changed(job_id)
        for action in decision.actions:
            if action is Action.STOP_RUNNER:
                self._stop_runner(job_id)
            elif action is Action.NOTIFY:
                record_finished(job)
                self._notify(job_id)
                self.on_finished(job)
            elif action is Action.EXPIRE:
                self._delete_objects(f"{job.spec.tenant}/{job_id}")
                self.store.mark_expired(job_id)
        return job

    async def cancel(self, job_id: str) -> Job | None:
        await asyncio.to_thread(self.store.request_cancel, job_id)
        job = self.observe(job_id, lifecycle.CancelRequested(utcnow()))
        self.wake()
        return job

    async def wait(self, job_id: str, timeout: float) -> Job | None:
        job = await asyncio.to_thread(self.store.get, job_id)
        if job is None or job.status.phase.terminal:
            return job
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[job_id].append(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(job_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(job_id, None)
        return await asyncio.to_thread(self.store.get, job_id)

    @contextlib.contextmanager
    def watching(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``job_id``'s status or progress changes (cleared by the
        watcher once it has read the job again)."""
        changed = asyncio.Event()
        self._watchers[job_id].add(changed)
        try:
            yield changed
        finally:
            self._watchers[job_id].discard(changed)
            if not self._watchers[job_id]:
                self._watchers.pop(job_id, None)

    def _changed(self, job_id: str) -> None:
        for changed in self._watchers.get(job_id, ()):
            changed.set()

    def _progress(self, job_id: str, progress: Progress) -> None:
        self.store.save_progress(job_id, progress)
        self._changed(job_id)

    def _notify(self, job_id: str) -> None:
        for future in self._waiters.pop(job_id, []):
            if not future.done():
                future.set_result(None)

    # --- the loop ----------------------------------------------------------------------------

    async def _loop(self) -> None:
        poll = self.settings.runner.poll_seconds
        while True:
            try:
                self._schedule()
                if time.monotonic() - self._last_sweep > self.settings.runner.sweep_seconds:
                    self._last_sweep = time.monotonic()
                    cutoff = self.sweep_expired()
                    # Deletions nothing waits for: in a thread, so that a write lock held
                    # elsewhere (a `docjobs keys` command) does not hold up the loop.
                    await asyncio.to_thread(self.forget_before_cutoff, cutoff)
            except Exception:
                log.exception("supervisor pass failed; trying again")
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # comes as the wake-up does (a stop right after a submission), and stop() hangs.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._wake.wait()

    def _schedule(self) -> None:
        free = self.pool.size - len(self.running) - len(self._extra)
        if free <= 0:
            return
        now = utcnow()
        # Only while a sync caller still waits does its job go first, and only within its
        # tenant's queue: fair share between tenants holds for sync callers too.
        waited = set(self._waiters)
        waiting: list[Job] = []
        for job in self.store.runnable(now, free + len(self.running), waited):
            if job.spec.job_id in self.running:
                continue
            if job.cancel_requested:
                self.observe(job.spec.job_id, lifecycle.CancelRequested(now))
                continue
            waiting.append(job)
        running = Counter(self._tenant_of.values())
        cap = self.settings.jobs.max_running_per_tenant
        for job in fairshare.next_jobs(waiting, running, free, cap, waited, self._turns):
            job_id = job.spec.job_id
            self._turn += 1
            self._turns[job.spec.tenant] = self._turn
            task = asyncio.create_task(self._attempt(job_id), name=f"attempt-{job_id}")
            self.running[job_id] = task
            self._tenant_of[job_id] = job.spec.tenant
            task.add_done_callback(functools.partial(self._attempt_done, job_id))
        self._lend_idle_workers()

    def _lend_idle_workers(self) -> None:
        """Workers that no waiting job needs read one more part each of a paged attempt,
        in turn across those attempts; each comes back after its part, so a job that
        arrives meanwhile gets the next one."""
        lent = True
        while lent:
            lent = False
            for paged in list(self._paged.values()):
                if self.pool.size - len(self.running) - len(self._extra) <= 0:
                    return
                part = paged.take()
                if part is None:
                    continue
                task = asyncio.create_task(paged.read(part), name=f"part-{part.index}")
                self._extra.add(task)
                task.add_done_callback(self._extra_done)
                lent = True

    def _extra_done(self, task: asyncio.Task[None]) -> None:
        self._extra.discard(task)
        self.wake()

    def _attempt_done(self, job_id: str, task: asyncio.Task[None]) -> None:
        self.running.pop(job_id, None)
        self._tenant_of.pop(job_id, None)
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            # An attempt that broke inside the supervisor must not leave its job processing
            # for good: it counts as a lost runner, so the retry policy decides what follows.
            log.error("attempt of %s broke", job_id, exc_info=failure)
            try:
                self.observe(
                    job_id, lifecycle.RunnerLost(f"the attempt broke: {failure}", utcnow())
                )
            except Exception:
                log.exception("cannot record the broken attempt of %s", job_id)
        self.wake()

    async def _attempt(self, job_id: str) -> None:
        job = self.observe(job_id, lifecycle.AttemptStarted(utcnow()))
        if job is None or job.status.phase is not Phase.PROCESSING:
            return
        attempt = job.status.attempts
        part_pages = self.settings.runner.part_pages
        parts = plan_parts(job.spec, part_pages, part_pages) if self.pool.size > 1 else []
        if parts:
            on_progress = functools.partial(self._progress, job_id)
            paged = PagedAttempt(job.spec, attempt, parts, self.pool, on_progress)
            self._paged[job_id] = paged
            self.wake()  # idle workers may read parts at once
            try:
                self.observe(job_id, await paged.finish())
            finally:
                self._paged.pop(job_id, None)
            return
        operation = job.spec.operation
        if isinstance(operation, Extract) and operation.template is not None:
            # Queued before template versions, the job carries its template; workers read
            # templates from the store only.
            await asyncio.to_thread(save_template_version, self.objects, job.spec.tenant, operation)
        worker = await self.pool.acquire()
        self._workers[job_id] = worker
        self.runner_pids[job_id] = worker.pid
        request = WorkerRequest(spec=job.spec, attempt=attempt)
        try:
            ended = await run_attempt(self.pool, worker, request, job.spec.timeout_seconds)
            self.observe(job_id, ended)
        finally:
            self._workers.pop(job_id, None)
            self.runner_pids.pop(job_id, None)

    def _delete_objects(self, prefix: str) -> None:
        """In a thread: with S3 this is network requests, which must not hold up the loop."""

        def delete() -> None:
            try:
                self.objects.delete_prefix(prefix)
            except Exception:  # the job expired all the same; its files are orphans
                log.warning("cannot delete the objects under %s", prefix, exc_info=True)

        asyncio.get_running_loop().run_in_executor(None, delete)

    def _stop_runner(self, job_id: str) -> None:
        worker = self._workers.get(job_id)
        if worker is not None:
            worker.kill()
        paged = self._paged.get(job_id)
        if paged is not None:
            paged.stop()

    def _recorded_outcome(self, job: Job) -> RunOutcome | None:
        key = outcome_key(job.spec.tenant, job.spec.job_id, job.status.attempts)
        try:
            return RunOutcome.model_validate_json(b"".join(self.objects.iter_chunks(key)))
        except (ObjectNotFound, ValueError):
            return None

    def sweep_expired(self) -> datetime:
        """Expires the jobs due; returns before when tombstones and records may go."""
        now = utcnow()
        for job in self.store.due_for_expiry(now):
            self.observe(job.spec.job_id, lifecycle.TimePassed(now))
        return now - timedelta(seconds=self.settings.jobs.tombstone_seconds)

    def forget_before_cutoff(self, cutoff: datetime) -> None:
        self.store.forget_expired(cutoff)
        self.forget_before(cutoff)
