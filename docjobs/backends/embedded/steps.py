"""The embedded host of the lifecycle step (:mod:`docjobs.domain.step`): the job's row in
SQLite as its ledger, and the supervisor's actions as its effects.

Steps run in worker threads, so that no SQLite call holds up the event loop; two steps of
one job may then run at once, and the conditional write (on the status text read) makes
the later one read and decide again. What an action changes on the loop (a waiter's
future, a watcher's event, a worker to kill) is handed to the loop, never touched from the
step's thread.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from docjobs.backends.embedded.jobs import SQLiteJobStore
from docjobs.domain.lifecycle import Action, Decision
from docjobs.domain.models import Job, JobStatus
from docjobs.domain.step import Conflict, Reading
from docjobs.metrics import record_finished

RecordEnd = Callable[[Job, sqlite3.Connection], None]
"""Writes what must commit with a job's end (its webhook outbox entry)."""


@dataclass(frozen=True)
class StoredJob:
    """A job as its row holds it."""

    job: Job
    status_text: str
    """The status column's text, which a conditional write compares."""


@dataclass
class JobRow:
    """One job's status in the embedded database, as a :class:`~docjobs.domain.step.Ledger`."""

    store: SQLiteJobStore
    job_id: str
    record_end: RecordEnd
    known: StoredJob | None = None
    """The row as the supervisor last read or wrote it, which the first read takes instead
    of a query. If the row changed since, the conditional write finds out and the next try
    reads it: a stale row costs a try, never a wrong write."""

    def read(self) -> Reading[StoredJob, JobStatus] | None:
        record, self.known = self.known, None
        if record is None:
            stored = self.store.get_stored(self.job_id)
            if stored is None:
                return None
            record = StoredJob(*stored)
        return Reading(record, record.job, record.job.status)

    def keep(self, reading: Reading[StoredJob, JobStatus], decided: JobStatus) -> JobStatus:
        return decided

    def write(
        self, reading: Reading[StoredJob, JobStatus], status: JobStatus, decision: Decision
    ) -> StoredJob:
        job = reading.job.model_copy(update={"status": status})
        # A job's end and its outbox entry commit together: a crash loses neither.
        ending = Action.NOTIFY in decision.actions
        also = functools.partial(self.record_end, job) if ending else None
        text = self.store.save_status(
            self.job_id,
            status,
            also=also,
            if_stored=reading.record.status_text,
            spec=job.spec,
        )
        if text is None:
            raise Conflict
        return StoredJob(job, text)


@dataclass(frozen=True)
class LoopEffects:
    """The supervisor's actions, as :class:`~docjobs.domain.step.Effects` called in a step's
    thread; each callable given here runs on ``loop``."""

    loop: asyncio.AbstractEventLoop
    store: SQLiteJobStore
    stop_attempt: Callable[[str], None]
    """Kills the job's worker and stops its paged attempt, by job id."""
    finished: Callable[[Job], None]
    """Wakes the job's sync waiters and announces its end."""
    delete_objects: Callable[[str], None]
    """Deletes the objects under a prefix, in the background."""

    def stop_runner(self, record: StoredJob, job: Job) -> None:
        self.loop.call_soon_threadsafe(self.stop_attempt, job.spec.job_id)

    def notify(self, record: StoredJob, job: Job) -> None:
        record_finished(job)
        self.loop.call_soon_threadsafe(self.finished, job)

    def expire(self, record: StoredJob, job: Job) -> None:
        self.loop.call_soon_threadsafe(self.delete_objects, f"{job.spec.tenant}/{job.spec.job_id}")
        self.store.mark_expired(job.spec.job_id)
