"""Jobs read a moment ago, kept in memory until the job next changes.

Pollers read the same job many times between two of its changes; from memory, such a read
costs no thread hop and no row to parse. The serving process is the only one that writes
jobs (``docjobs keys`` and other commands touch keys only), and every write of the job
store forgets the jobs it changed, so a job kept here is the job in the database.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from docjobs.domain.models import Job

MAX_RECENT_JOBS = 10_000
"""Jobs kept at most; the least recently read go first."""


class RecentJobs:
    """Thread-safe: reads run in worker threads, some writes on the event loop.

    A read that raced a write must not keep what it read (it may be the row from before
    the write): a reader takes a ``mark`` before reading and ``keep`` refuses its job if
    any write finished since.
    """

    def __init__(self, max_entries: int = MAX_RECENT_JOBS) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._writes = 0

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs.move_to_end(job_id)
            return job

    def mark(self) -> int:
        """To give ``keep``: taken before reading the job from the database."""
        with self._lock:
            return self._writes

    def keep(self, job: Job, mark: int) -> None:
        with self._lock:
            if mark != self._writes:  # a write finished while the job was read
                return
            self._keep(job)

    def _keep(self, job: Job) -> None:
        self._jobs[job.spec.job_id] = job
        self._jobs.move_to_end(job.spec.job_id)
        while len(self._jobs) > self.max_entries:
            self._jobs.popitem(last=False)

    def written(self, job: Job, mark: int) -> None:
        """After a write of ``job`` that committed right after ``mark`` was taken (inside
        its transaction): ``job`` replaces what was kept of it, unless another write
        finished since the mark, which may have changed it again (then it is forgotten)."""
        with self._lock:
            self._writes += 1
            if mark + 1 == self._writes:
                self._keep(job)
            else:
                self._jobs.pop(job.spec.job_id, None)

    def forget(self, job_id: str | None = None) -> None:
        """After a write (committed or not) of ``job_id``, or of any job when None."""
        with self._lock:
            self._writes += 1
            if job_id is None:
                self._jobs.clear()
            else:
                self._jobs.pop(job_id, None)
