"""What happens to a job next: a pure function of its spec, its status and one observation.

Both backends (the embedded supervisor and the Kubernetes operator) feed what they observe
into :func:`decide` and carry out the returned actions; neither decides on its own whether a
job is retried, failed, cancelled or expired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from docjobs.domain.models import (
    EXIT_OK,
    EXIT_PERMANENT,
    ConvertToPdf,
    JobError,
    JobSpec,
    JobStatus,
    Phase,
    Progress,
    RunnerSummary,
)

# --- observations -------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptStarted:
    at: datetime


@dataclass(frozen=True)
class RunnerExited:
    exit_code: int
    summary: RunnerSummary
    at: datetime


@dataclass(frozen=True)
class RunnerLost:
    """The runner vanished without an exit code (host restart, node lost, evicted)."""

    reason: str
    at: datetime


@dataclass(frozen=True)
class AttemptTimedOut:
    at: datetime


@dataclass(frozen=True)
class CancelRequested:
    at: datetime


@dataclass(frozen=True)
class TimePassed:
    at: datetime


Observation = (
    AttemptStarted | RunnerExited | RunnerLost | AttemptTimedOut | CancelRequested | TimePassed
)

# --- actions ------------------------------------------------------------------------------


class Action(StrEnum):
    STOP_RUNNER = "stop_runner"
    """Stop the runner of the current attempt (cancel)."""
    NOTIFY = "notify"
    """The job reached a terminal phase: deliver webhooks."""
    EXPIRE = "expire"
    """The finished job outlived its TTL: delete it and its objects."""


@dataclass(frozen=True)
class Decision:
    status: JobStatus
    actions: tuple[Action, ...] = field(default=())


def is_runnable(status: JobStatus, now: datetime) -> bool:
    """Whether an attempt may start now."""
    if status.phase is Phase.PENDING:
        return True
    return status.phase is Phase.RETRYING and (
        status.next_attempt_at is None or status.next_attempt_at <= now
    )


def decide(spec: JobSpec, status: JobStatus, observation: Observation) -> Decision:
    phase = status.phase
    match observation:
        case TimePassed(at=now):
            if phase.terminal and status.completed_at is not None:
                expiry = status.completed_at + timedelta(seconds=spec.ttl_seconds_after_finished)
                if now >= expiry:
                    return Decision(status, (Action.EXPIRE,))
            return Decision(status)
        case _ if phase.terminal:
            return Decision(status)
        case CancelRequested(at=now):
            stopped = status.model_copy(
                update={
                    "phase": Phase.CANCELLED,
                    "completed_at": now,
                    "next_attempt_at": None,
                    "message": "Job cancelled",
                }
            )
            actions = (Action.STOP_RUNNER,) if phase is Phase.PROCESSING else ()
            return Decision(stopped, (*actions, Action.NOTIFY))
        case AttemptStarted(at=now):
            if not is_runnable(status, now):
                return Decision(status)
            if status.attempts >= spec.retry_policy.max_attempts:
                return _fail(status, _gave_up(status.attempts, "no attempts left"), now)
            started = status.model_copy(
                update={
                    "phase": Phase.PROCESSING,
                    "attempts": status.attempts + 1,
                    "started_at": status.started_at or now,
                    "next_attempt_at": None,
                    "message": "Job is being processed",
                    "progress": None,  # a new attempt reads every page again
                }
            )
            return Decision(started)
        case _ if phase is not Phase.PROCESSING:
            return Decision(status)
        case RunnerExited(exit_code=code, summary=summary, at=now):
            # Taken once per attempt (its end leaves Processing), whatever the outcome: a
            # failed attempt cost CPU time too.
            spent = round(status.cpu_seconds + summary.cpu_seconds, 3)
            status = status.model_copy(update={"cpu_seconds": spent})
            if code == EXIT_OK:
                return _complete(status, summary, now)
            error = summary.error or JobError(
                reason="RunnerFailed", message=f"runner exited with code {code}", permanent=False
            )
            if code == EXIT_PERMANENT:
                return _fail(status, error.model_copy(update={"permanent": True}), now)
            return _retry_or_fail(spec, status, error.model_copy(update={"permanent": False}), now)
        case AttemptTimedOut(at=now):
            deterministic = isinstance(spec.operation, ConvertToPdf)
            error = JobError(
                reason="DeadlineExceeded",
                message=f"attempt ran longer than {spec.timeout_seconds:g} s",
                permanent=deterministic,
            )
            if deterministic:
                # A conversion does the same work from the same bytes on every attempt: one
                # that ran out of time will run out again. OCR and extraction are retried
                # once, as they may have lost their time to a slow or contended engine.
                return _fail(status, error, now)
            if status.error is not None and status.error.reason == error.reason:
                # The attempt before timed out too: a document that ran out of time twice
                # would hold a worker for the full deadline on every further attempt.
                return _fail(status, error, now)
            return _retry_or_fail(spec, status, error, now)
        case RunnerLost(reason=reason, at=now):
            if status.attempts >= spec.retry_policy.max_attempts:
                return _fail(status, _gave_up(status.attempts, reason), now)
            # Not the document's fault, but the attempt counts, so it waits out the backoff
            # like any failed one: a runner lost to a sick node is not restarted in a loop.
            lost = JobError(reason="RunnerLost", message=reason, permanent=False)
            return _retry_or_fail(spec, status, lost, now)
    return Decision(status)


def _complete(status: JobStatus, summary: RunnerSummary, now: datetime) -> Decision:
    done = status.model_copy(
        update={
            "phase": Phase.COMPLETE,
            "completed_at": now,
            "result": summary.result,
            "page_count": summary.page_count,
            "details": summary.details,
            "error": None,
            "message": "Job complete",
            "progress": status.progress
            if summary.page_count is None
            else Progress(pages_done=summary.page_count, pages_total=summary.page_count),
        }
    )
    return Decision(done, (Action.NOTIFY,))


def _fail(status: JobStatus, error: JobError, now: datetime) -> Decision:
    failed = status.model_copy(
        update={
            "phase": Phase.FAILED,
            "completed_at": now,
            "next_attempt_at": None,
            "error": error,
            "message": error.message,
        }
    )
    return Decision(failed, (Action.NOTIFY,))


def _retry_or_fail(spec: JobSpec, status: JobStatus, error: JobError, now: datetime) -> Decision:
    if status.attempts >= spec.retry_policy.max_attempts:
        return _fail(status, error, now)
    delay = spec.retry_policy.backoff_after(status.attempts)
    retrying = status.model_copy(
        update={
            "phase": Phase.RETRYING,
            "next_attempt_at": now + timedelta(seconds=delay),
            "error": error,
            "message": (
                f"Attempt {status.attempts} failed ({error.message}); retrying in {delay:g} s"
            ),
        }
    )
    return Decision(retrying, ())


def _gave_up(attempts: int, why: str) -> JobError:
    return JobError(
        reason="RetriesExhausted",
        message=f"gave up after {attempts} attempts: {why}",
        permanent=False,
    )
