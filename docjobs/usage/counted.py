"""What a tenant's monthly page quota counts: the pages of its usage records of the month, and
the pages of its jobs that have no record among them yet, those admitted but not ended
first of all, so that jobs running at once cannot pass the quota together.

A job not ended holds the pages it is expected to count (:func:`document_pages`); once
ended it holds what its record will say (a failed or cancelled job: none), until its record
is read with the others.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date

from docjobs.domain.models import Job, OcrParams, Operation
from docjobs.domain.pages import InvalidPageSelection, validate_pages

from .records import UsageRecord, usage_of


def document_pages(operation: Operation, page_count: int | None) -> int:
    """The pages a job of ``operation`` on a document of ``page_count`` pages is expected to
    count: those its ``pages`` selects (OCR), else all of them. One where the count is
    known only once the job runs (a conversion's output, an Office document to read)."""
    if page_count is None:
        return 1
    if isinstance(operation, OcrParams) and operation.pages:
        try:
            return len(validate_pages(operation.pages, page_count))
        except InvalidPageSelection:
            return page_count
    return page_count


def held_pages(job: Job) -> int:
    """The pages ``job`` counts before its record is read."""
    if not job.status.phase.terminal:
        return document_pages(job.spec.operation, job.spec.input.page_count)
    return usage_of(job).page_total


@dataclass(frozen=True)
class MonthUsage:
    """A tenant's month so far, as its quota counts it."""

    recorded_pages: int
    """The pages of the usage records of the month."""
    unrecorded: Sequence[Job]
    """The tenant's jobs of the month that have no record among those: not ended, or ended
    since the records were read."""

    @property
    def pages(self) -> int:
        return self.recorded_pages + sum(held_pages(job) for job in self.unrecorded)


def of_month(job: Job, first: date) -> bool:
    """Whether ``job`` counts in the month from ``first`` on: not ended, or ended in it."""
    return not job.status.phase.terminal or usage_of(job).day >= first


RecordsOf = Callable[[str, date, date], Awaitable[list[UsageRecord]]]
"""A tenant's usage records from one day to another (both included)."""


@dataclass(frozen=True)
class _Read:
    first: date
    at: float
    pages: int
    covered: frozenset[str]
    """The ended jobs the live view held just after the read whose records it found."""


class RecordedMonths:
    """Each tenant's recorded pages of the month, read again at most every ``fresh_seconds``:
    for records that are costly to read (an object-store listing) and written by another
    process some time after the job's end (the operator).

    The jobs still held by a live view (a watch cache) count from that view, but for those
    whose record the last read found: a job counts once, before and after its record is
    written. One that leaves the view after its end and before a read found its record (an
    archive sooner than ``fresh_seconds``) is not counted until the next read.
    """

    def __init__(self, records_of: RecordsOf, fresh_seconds: float) -> None:
        self.records_of = records_of
        self.fresh_seconds = fresh_seconds
        self._reads: dict[str, _Read] = {}

    async def usage(
        self, tenant: str, first: date, last: date, live: Callable[[], Sequence[Job]]
    ) -> MonthUsage:
        """``live``: the tenant's jobs the view holds now."""
        now = time.monotonic()
        read = self._reads.get(tenant)
        if read is None or read.first != first or now - read.at > self.fresh_seconds:
            records = await self.records_of(tenant, first, last)
            # Ended jobs are taken after the read: one that ended meanwhile is either found
            # (and skipped below) or counted from the view.
            ended = {job.spec.job_id for job in live() if job.status.phase.terminal}
            read = _Read(
                first,
                now,
                sum(record.page_total for record in records),
                frozenset(record.job_id for record in records if record.job_id in ended),
            )
            self._reads[tenant] = read
        jobs = [
            job for job in live() if job.spec.job_id not in read.covered and of_month(job, first)
        ]
        return MonthUsage(read.pages, jobs)
