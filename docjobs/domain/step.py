"""One step of a job's lifecycle, the same for every host that keeps a job's status.

A step reads the job, asks :func:`lifecycle.decide` what follows from one observation, adds
the host's bookkeeping, writes the status on condition that nobody wrote in between, and
only then carries out the decision's actions. The hosts (the embedded supervisor on SQLite,
the operator on the DocumentJob's status subresource, the API on the jobs it claimed)
differ only in where the status lives and what an action does there, which they plug in as
a :class:`Ledger` and an :class:`Effects`; the order of the step, and its retries on a
conflict, are written here once.

The step does no I/O of its own and never sleeps: it is synchronous, so a host on an event
loop runs it in a thread (its ledger and effects then run in that thread too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, assert_never

from docjobs.domain import lifecycle
from docjobs.domain.lifecycle import Action, Decision, Observation
from docjobs.domain.models import Job, JobStatus

R = TypeVar("R")
"""The host's record of a job: a DocumentJob resource, a job as its database row reads."""
S = TypeVar("S", bound=JobStatus)
"""The status as the host stores it: the lifecycle's, with the host's bookkeeping."""
R_contra = TypeVar("R_contra", contravariant=True)


class Conflict(Exception):
    """The record changed between the step's read and its write: read again, decide again."""


class Contended(RuntimeError):
    """Every try of a step met a :class:`Conflict`."""


@dataclass(frozen=True)
class Reading(Generic[R, S]):
    """A job as a ledger read it."""

    record: R
    job: Job
    """The spec and the lifecycle's status (without the host's bookkeeping)."""
    stored: S
    """The status as stored: what the step compares its new status with."""


class Ledger(Protocol[R, S]):
    """Where a host keeps one job's status."""

    def read(self) -> Reading[R, S] | None:
        """The job as stored now; None when it is gone (or unreadable: the host says why)."""
        ...

    def keep(self, reading: Reading[R, S], decided: JobStatus) -> S:
        """The status to store for the lifecycle's ``decided`` one: the host's bookkeeping
        around it (``decided`` itself where the host keeps none). Pure."""
        ...

    def write(self, reading: Reading[R, S], status: S, decision: Decision) -> R:
        """Store ``status`` if the record is still as ``reading`` found it, and raise
        :class:`Conflict` if not; returns the record as written. ``decision`` says what the
        write is for (a host commits a job's end with what must not be lost with it)."""
        ...


class Effects(Protocol[R_contra]):
    """What a host does for each :class:`~docjobs.domain.lifecycle.Action`, after the write
    that decided it. ``record`` is the record as written (or as read, when nothing
    changed) and ``job`` carries the decided status."""

    def stop_runner(self, record: R_contra, job: Job) -> None:
        """Stop the runner of the job's current attempt."""
        ...

    def notify(self, record: R_contra, job: Job) -> None:
        """The job has ended: count it, wake whoever waits, deliver its webhooks."""
        ...

    def expire(self, record: R_contra, job: Job) -> None:
        """The job outlived its TTL: delete it and its objects."""
        ...


Choose = Callable[[R, Job], Observation | None]
"""What a host observes of a job, given the record just read: None when the observation
no longer applies to it (stale: an earlier attempt's, a runner already replaced)."""
Amend = Callable[[S], S]
"""Host bookkeeping beyond the lifecycle's (a runner's name, progress), applied to the
status to store before the step compares and writes it."""


@dataclass(frozen=True)
class Given:
    """A :data:`Choose` that observes the same thing whatever the record says."""

    observation: Observation

    def __call__(self, record: object, job: Job) -> Observation:
        return self.observation


def nothing(record: object, job: Job) -> None:
    """A :data:`Choose` for a step that only amends the bookkeeping."""
    return None


@dataclass(frozen=True)
class Step(Generic[R, S]):
    """A job after one step."""

    record: R
    """As written, or as read when nothing changed."""
    job: Job
    """The spec with the decided status."""
    status: S
    """The status as stored now."""
    decision: Decision
    applied: bool
    """Whether the observation was taken (``choose`` did not dismiss it as stale)."""
    wrote: bool
    """Whether the status changed, and so was written."""
    conflicts: int
    """Writes that met a :class:`Conflict` before this one."""


def take_step(
    ledger: Ledger[R, S],
    choose: Choose[R],
    effects: Effects[R],
    *,
    tries: int,
    amend: Amend[S] | None = None,
) -> Step[R, S] | None:
    """Apply what ``choose`` observes to the job ``ledger`` holds; None if it is gone.

    Each try reads, decides and writes; a :class:`Conflict` starts the next try from a fresh
    read, so the decision always follows the status it replaces. After ``tries`` conflicts
    :class:`Contended` is raised and no action is carried out. A status that comes out
    unchanged is not written, but its actions (an expiry) are still carried out.
    """
    job_id = "the job"
    for conflicts in range(tries):
        reading = ledger.read()
        if reading is None:
            return None
        job = reading.job
        job_id = job.spec.job_id
        observation = choose(reading.record, job)
        decision = (
            lifecycle.decide(job.spec, job.status, observation)
            if observation is not None
            else Decision(job.status)
        )
        status = ledger.keep(reading, decision.status)
        if amend is not None:
            status = amend(status)
        record, wrote = reading.record, status != reading.stored
        if wrote:
            try:
                record = ledger.write(reading, status, decision)
            except Conflict:
                continue
        decided = job.model_copy(update={"status": decision.status})
        carry_out(effects, record, decided, decision.actions)
        return Step(record, decided, status, decision, observation is not None, wrote, conflicts)
    raise Contended(f"{job_id}: the status changed under each of {tries} tries")


def carry_out(effects: Effects[R], record: R, job: Job, actions: tuple[Action, ...]) -> None:
    """Each action, in the decision's order, through the host's ``effects``."""
    for action in actions:
        if action is Action.STOP_RUNNER:
            effects.stop_runner(record, job)
        elif action is Action.NOTIFY:
            effects.notify(record, job)
        elif action is Action.EXPIRE:
            effects.expire(record, job)
        else:
            assert_never(action)
