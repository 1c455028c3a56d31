"""The operator's view of a DocumentJob status: which attempt is current, how old it is,
what a look at it is for (with how long a job that worker pods may claim is left to them),
and the notes a step writes besides the lifecycle's decision (the tenant cap, the current
Job, shards done, pages read, a runner waiting for a node).

Pure functions; the bookkeeping every writer adds is :mod:`docjobs.kube.status`, shared
with the API."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol

from docjobs.domain.engines import CPU_ENGINES
from docjobs.domain.lifecycle import is_runnable
from docjobs.domain.models import Engine, Job, JobStatus, Phase, Progress
from docjobs.kube.claimable import claimable, waiting_since
from docjobs.kube.claims import claim_of
from docjobs.kube.resources import DocumentJobStatus
from docjobs.kube.status import parse_time, with_progress

WAITING = "Waiting for a node: "
TENANT_CAP = "Waiting for a slot: "
"""A runnable job whose tenant runs as many jobs as ``max_running_per_tenant`` allows."""
PROCESSING = "Job is being processed"
"""The lifecycle's message while an attempt runs, restored once a waiting pod has a node."""


def is_current(status: JobStatus, attempt: int) -> bool:
    """Whether an outcome of ``attempt`` still matters: older attempts' Jobs are history."""
    return status.phase is Phase.PROCESSING and status.attempts == attempt


def age(resource: dict[str, Any], now: datetime) -> float:
    created = parse_time(resource["metadata"].get("creationTimestamp"))
    return max((now - created).total_seconds(), 0.0) if created else 0.0


def runs(status: DocumentJobStatus, attempt: int, job: str) -> bool:
    """Whether ``job`` is the runner Job of ``attempt``, and that attempt still current."""
    return is_current(status, attempt) and status.current_job == job


def claim_held(resource: dict[str, Any], now: datetime) -> bool:
    """Whether an API pod runs the job under a live claim (the operator then leaves it)."""
    claim = claim_of(resource)
    return claim is not None and claim.held(now)


class Takes(Protocol):
    """When worker pods last took a waiting job, per pool (the operator's queue)."""

    def last_take(self, pool: str) -> datetime | None: ...

    def pool_of(self, resource: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class ClaimGrace:
    """How long a runnable job that worker pods may claim is left to them
    (``claim_grace_seconds``; 0: not at all), and which jobs they may claim.

    The grace counts from the later of the job's wait and the last take of its pool
    (``takes``): a backlog drained by busy workers stays theirs however deep it is; workers
    that took nothing for the grace (gone, stuck, too few) leave it to runner Jobs."""

    seconds: float = 0.0
    shard_threshold_pages: int = 0
    part_pages: int = 0
    takes: Takes | None = None
    engines: Collection[Engine] = CPU_ENGINES
    """The engines whose jobs some worker pod claims."""

    def ends(self, resource: dict[str, Any], job: Job) -> datetime | None:
        """When the operator stops leaving ``job`` to the workers; None when it never does
        (no grace, or a job no worker may claim)."""
        if self.seconds <= 0 or not claimable(
            job, self.shard_threshold_pages, self.part_pages, self.engines
        ):
            return None
        since = waiting_since(resource, job)
        if self.takes is not None:
            taken = self.takes.last_take(self.takes.pool_of(resource))
            since = since if taken is None else max(since, taken)
        return since + timedelta(seconds=self.seconds)


class Move(Enum):
    """What a look at a DocumentJob is for, before any store or slot is consulted."""

    CANCEL = "cancel"
    CLAIMED = "claimed"
    """An API pod or a worker pod runs it on its own warm workers."""
    TAKE_OVER = "take over"
    """Its claim lapsed during an attempt."""
    OFFERED = "offered"
    """Runnable, and left to the worker pods to claim until its grace ends."""
    START = "start"
    EXPIRE = "expire"
    """Ended: it may have outlived its TTL."""
    WAIT = "wait"


def next_move(
    resource: dict[str, Any], job: Job, now: datetime, grace: ClaimGrace | None = None
) -> Move:
    phase = job.status.phase
    if job.cancel_requested and not phase.terminal:
        return Move.CANCEL
    claim = claim_of(resource)
    if claim is not None and claim.held(now):
        return Move.CLAIMED
    if claim is not None and phase is Phase.PROCESSING:
        return Move.TAKE_OVER
    if is_runnable(job.status, now):
        ends = grace.ends(resource, job) if grace is not None else None
        return Move.OFFERED if ends is not None and now < ends else Move.START
    return Move.EXPIRE if phase.terminal else Move.WAIT


# --- what a step writes besides the lifecycle's decision -----------------------------------


def with_tenant_cap(status: DocumentJobStatus, busy: int) -> DocumentJobStatus:
    """Why a runnable job waits: ``busy`` jobs of its tenant run, as many as it may."""
    if status.phase not in (Phase.PENDING, Phase.RETRYING):
        return status
    reason = f"{TENANT_CAP}{busy} jobs of this tenant are running, its limit"
    return status.model_copy(update={"message": reason})


def with_current_job(status: DocumentJobStatus, attempt: int, job: str) -> DocumentJobStatus:
    """``job`` exists now as ``attempt``'s runner (or merge) Job."""
    return status.model_copy(update={"current_job": job}) if status.attempts == attempt else status


def with_merge_job(status: DocumentJobStatus, attempt: int, job: str) -> DocumentJobStatus:
    """Every shard of ``attempt`` succeeded: its merge Job ``job`` is the current one."""
    if not is_current(status, attempt):
        return status
    return status.model_copy(update={"current_job": job})


def with_shards_done(
    status: DocumentJobStatus, attempt: int, done: int, total: int, progress: Progress | None
) -> DocumentJobStatus:
    """How far a sharded attempt is: ``2/4 shards done`` and its pages done."""
    if not is_current(status, attempt):
        return status
    if progress is not None:
        status = with_progress(status, progress)
    return status.model_copy(update={"message": f"{PROCESSING}: {done}/{total} shards done"})


def with_pages_read(
    status: DocumentJobStatus, attempt: int, job: str, progress: Progress
) -> DocumentJobStatus:
    """The pages the runner of ``job`` stored as read, while it runs ``attempt``."""
    return with_progress(status, progress) if runs(status, attempt, job) else status


def with_waiting(status: DocumentJobStatus, attempt: int, message: str | None) -> DocumentJobStatus:
    """Why ``attempt``'s runner waits (the scheduler's ``message``); ``None``: it got a
    node after all, and the waiting note goes."""
    if not is_current(status, attempt):
        return status
    if message is None and not status.message.startswith(WAITING):
        return status
    text = f"{WAITING}{message}" if message else PROCESSING
    return status.model_copy(update={"message": text})
