"""Runs embedded jobs: starts attempts on warm workers, feeds outcomes to ``lifecycle``.

Every change of a job's status goes through :meth:`Supervisor.observe`: one lifecycle step
(:func:`docjobs.domain.step.take_step`) on the job's SQLite row, in a worker thread (see
:mod:`.steps`). No SQLite call runs on the event loop: the scheduler's queries, recovery,
expiry and progress writes go to threads too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime, timedelta
from typing import Any

from docjobs.backends.embedded.jobs import SQLiteJobStore
from docjobs.backends.workers.pool import Worker, WorkerPool, run_attempt
from docjobs.config import Settings
from docjobs.domain import fairshare, lifecycle
from docjobs.domain.clock import utcnow
from docjobs.domain.lifecycle import Observation
from docjobs.domain.models import Extract, Job, Phase, Progress, RunOutcome, WorkerRequest
from docjobs.domain.sharding import plan_parts
from docjobs.domain.step import Given, take_step
from docjobs.storage.base import ObjectNotFound, ObjectStore, outcome_key
from docjobs.storage.templates import save_template_version
from docjobs.tracing import record_span

from .paged import PagedAttempt
from .steps import JobRow, LoopEffects, StoredJob

log = logging.getLogger(__name__)

STEP_TRIES = 5
"""Tries of a status step that meets a conflict (a progress write, another step first)."""


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
        self._progress_due: dict[str, Progress] = {}
        """Progress not yet written, by job: each job's writer writes only the latest."""
        self._progress_writers: dict[str, asyncio.Task[None]] = {}
        self._steps: set[asyncio.Future[StoredJob | None]] = set()
        """Steps in their threads, waited for on stop: none writes after the database closes."""
        self._background: set[asyncio.Task[None]] = set()
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
        # Not cancelled: what they write (progress, a broken attempt) is short and wanted.
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*self._steps, return_exceptions=True)
        await self.pool.close()

    @property
    def alive(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def recover(self) -> None:
        """After a restart: attempts that finished are recorded, the others start again."""
        now = utcnow()
        interrupted = await asyncio.to_thread(self.store.in_phase, Phase.PROCESSING)
        # Outcomes may be S3 objects: read in a thread too.
        outcomes = await asyncio.to_thread(lambda: [self._recorded_outcome(j) for j in interrupted])
        for job, outcome in zip(interrupted, outcomes, strict=True):
            ended: Observation = (
                lifecycle.RunnerExited(outcome.exit_code, outcome.summary, now)
                if outcome is not None
                else lifecycle.RunnerLost("service restarted", now)
            )
            await self.observe(job.spec.job_id, ended)

    def wake(self) -> None:
        self._wake.set()

    # --- status changes ----------------------------------------------------------------------

    async def observe(self, job_id: str, observation: Observation) -> Job | None:
        """The job after one lifecycle step on ``observation``; None if it is gone."""
        stored = await self._observe(job_id, observation)
        return None if stored is None else stored.job

    async def _observe(
        self, job_id: str, observation: Observation, known: StoredJob | None = None
    ) -> StoredJob | None:
        """``observe``, the row as stored after the step; ``known``: the row as last seen,
        read again only if it changed since."""
        loop = asyncio.get_running_loop()
        step = loop.run_in_executor(None, self._step, loop, job_id, observation, known)
        self._steps.add(step)
        step.add_done_callback(self._steps.discard)
        # Shielded: a cancelled caller leaves the step to finish, and stop() waits for it.
        return await asyncio.shield(step)

    def _step(
        self,
        loop: asyncio.AbstractEventLoop,
        job_id: str,
        observation: Observation,
        known: StoredJob | None,
    ) -> StoredJob | None:
        """In a thread: the step, its effects handed to ``loop``."""
        effects = LoopEffects(
            loop, self.store, self._stop_runner, self._finished, self._delete_objects
        )
        ledger = JobRow(self.store, job_id, self.record_end, known)
        seen = take_step(ledger, Given(observation), effects, tries=STEP_TRIES)
        if seen is None:
            return None
        if seen.wrote:
            loop.call_soon_threadsafe(self._changed, job_id)
        return seen.record

    async def cancel(self, job_id: str) -> Job | None:
        await asyncio.to_thread(self.store.request_cancel, job_id)
        job = await self.observe(job_id, lifecycle.CancelRequested(utcnow()))
        self.wake()
        return job

    async def wait(self, job_id: str, timeout: float) -> Job | None:
        # Waiting before reading: a job that ends while it is read still wakes this waiter.
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[job_id].append(future)
        try:
            job = await asyncio.to_thread(self.store.get, job_id)
            if job is None or job.status.phase.terminal:
                return job
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
        """Written in the background by one writer per job, which writes the latest
        progress only: never out of order, and never holding up the attempt."""
        self._progress_due[job_id] = progress
        if job_id not in self._progress_writers:
            task = self._in_background(self._write_progress(job_id))
            self._progress_writers[job_id] = task
            task.add_done_callback(lambda _: self._progress_writers.pop(job_id, None))

    async def _write_progress(self, job_id: str) -> None:
        while (progress := self._progress_due.pop(job_id, None)) is not None:
            await asyncio.to_thread(self.store.save_progress, job_id, progress)
            self._changed(job_id)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (failure := task.exception()) is not None:
            log.error("supervisor background work failed", exc_info=failure)

    def _finished(self, job: Job) -> None:
        for future in self._waiters.pop(job.spec.job_id, []):
            if not future.done():
                future.set_result(None)
        self.on_finished(job)

    # --- the loop ----------------------------------------------------------------------------

    async def _loop(self) -> None:
        poll = self.settings.runner.poll_seconds
        while True:
            try:
                await self._schedule()
                if time.monotonic() - self._last_sweep > self.settings.runner.sweep_seconds:
                    self._last_sweep = time.monotonic()
                    cutoff = await self.sweep_expired()
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

    async def _schedule(self) -> None:
        # Only this pass starts attempts; while it awaits, attempts only end, so the free
        # workers counted here stay free.
        free = self.pool.size - len(self.running) - len(self._extra)
        if free <= 0:
            return
        now = utcnow()
        # Only while a sync caller still waits does its job go first, and only within its
        # tenant's queue: fair share between tenants holds for sync callers too.
        waited = set(self._waiters)
        runnable = await asyncio.to_thread(
            self.store.runnable, now, free + len(self.running), waited
        )
        waiting: list[Job] = []
        rows: dict[str, StoredJob] = {}
        for job, status_text in runnable:
            if job.spec.job_id in self.running:
                continue
            if job.cancel_requested:
                await self.observe(job.spec.job_id, lifecycle.CancelRequested(now))
                continue
            waiting.append(job)
            rows[job.spec.job_id] = StoredJob(job, status_text)
        running = Counter(self._tenant_of.values())
        cap = self.settings.jobs.max_running_per_tenant
        for job in fairshare.next_jobs(waiting, running, free, cap, waited, self._turns):
            job_id = job.spec.job_id
            self._turn += 1
            self._turns[job.spec.tenant] = self._turn
            task = asyncio.create_task(
                self._attempt(job_id, rows[job_id]), name=f"attempt-{job_id}"
            )
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
            self._in_background(self._record_broken(job_id, failure))
        self.wake()

    async def _record_broken(self, job_id: str, failure: BaseException) -> None:
        try:
            await self.observe(
                job_id, lifecycle.RunnerLost(f"the attempt broke: {failure}", utcnow())
            )
        except Exception:
            log.exception("cannot record the broken attempt of %s", job_id)
        self.wake()

    async def _attempt(self, job_id: str, queued: StoredJob) -> None:
        """One attempt of the job, ``queued`` as the scheduler read it."""
        started = await self._observe(job_id, lifecycle.AttemptStarted(utcnow()), queued)
        if started is None or started.job.status.phase is not Phase.PROCESSING:
            return
        job = started.job
        attempt = job.status.attempts
        if attempt == 1:
            record_span("queue wait", job.spec.traceparent, job.spec.created_at)
        part_pages = self.settings.runner.part_pages
        parts = plan_parts(job.spec, part_pages, part_pages) if self.pool.size > 1 else []
        if parts:
            on_progress = functools.partial(self._progress, job_id)
            paged = PagedAttempt(job.spec, attempt, parts, self.pool, on_progress)
            self._paged[job_id] = paged
            self.wake()  # idle workers may read parts at once
            try:
                await self.observe(job_id, await paged.finish())
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
            await self._observe(job_id, ended, started)
        finally:
            self._workers.pop(job_id, None)
            self.runner_pids.pop(job_id, None)

    def _delete_objects(self, prefix: str) -> None:
        """In a thread, not awaited: with S3 this is network requests, which must hold up
        neither the loop nor the expiry of the next job."""

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

    async def sweep_expired(self) -> datetime:
        """Expires the jobs due; returns before when tombstones and records may go."""
        now = utcnow()
        for job in await asyncio.to_thread(self.store.due_for_expiry, now):
            await self.observe(job.spec.job_id, lifecycle.TimePassed(now))
        return now - timedelta(seconds=self.settings.jobs.tombstone_seconds)

    def forget_before_cutoff(self, cutoff: datetime) -> None:
        self.store.forget_expired(cutoff)
        self.forget_before(cutoff)
