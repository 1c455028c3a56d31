"""The one lifecycle step every host runs: read, decide, write on condition, then act."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from docjobs.domain import lifecycle
from docjobs.domain.lifecycle import Action, Decision
from docjobs.domain.models import (
    InputRef,
    Job,
    JobSpec,
    JobStatus,
    OcrSimple,
    Phase,
    ResultRef,
    RunnerSummary,
)
from docjobs.domain.step import (
    Conflict,
    Contended,
    Given,
    Reading,
    Step,
    nothing,
    take_step,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = JobSpec(
    job_id="job_1",
    tenant="t",
    operation=OcrSimple(),
    input=InputRef(
        key="t/job_1/input",
        file_name="a.pdf",
        content_type="application/pdf",
        sha256="0" * 64,
        size=1,
    ),
    ttl_seconds_after_finished=60,
    created_at=T0,
)
DONE = RunnerSummary(
    result=ResultRef(key="t/job_1/result.json", content_type="application/json", size=2)
)


@dataclass(frozen=True)
class Row:
    """A stored job and the version its write gave it."""

    status: JobStatus
    version: int


@dataclass
class VersionedLedger:
    """A job's status behind a version, as a database row or a resource keeps it.

    ``meddle`` runs between each read and write: another writer getting in first."""

    row: Row | None = field(default_factory=lambda: Row(JobStatus(), 1))
    meddle: Callable[[VersionedLedger], None] = lambda ledger: None
    reads: int = 0
    writes: list[tuple[JobStatus, Decision]] = field(default_factory=list)

    def read(self) -> Reading[Row, JobStatus] | None:
        self.reads += 1
        if self.row is None:
            return None
        return Reading(self.row, Job(spec=SPEC, status=self.row.status), self.row.status)

    def keep(self, reading: Reading[Row, JobStatus], decided: JobStatus) -> JobStatus:
        return decided

    def write(self, reading: Reading[Row, JobStatus], status: JobStatus, decision: Decision) -> Row:
        self.meddle(self)
        if self.row is None or self.row.version != reading.record.version:
            raise Conflict
        self.row = Row(status, self.row.version + 1)
        self.writes.append((status, decision))
        return self.row

    def put(self, status: JobStatus) -> None:
        assert self.row is not None
        self.row = Row(status, self.row.version + 1)


@dataclass
class RecordedEffects:
    """The actions carried out, each with the version stored when it was."""

    ledger: VersionedLedger
    done: list[tuple[Action, Phase, int]] = field(default_factory=list)

    def _saw(self, action: Action, job: Job) -> None:
        assert self.ledger.row is not None
        self.done.append((action, job.status.phase, self.ledger.row.version))

    def stop_runner(self, record: Row, job: Job) -> None:
        self._saw(Action.STOP_RUNNER, job)

    def notify(self, record: Row, job: Job) -> None:
        self._saw(Action.NOTIFY, job)

    def expire(self, record: Row, job: Job) -> None:
        self._saw(Action.EXPIRE, job)


def processing(attempts: int = 1) -> JobStatus:
    return JobStatus(phase=Phase.PROCESSING, attempts=attempts, started_at=T0)


def step(
    ledger: VersionedLedger, observation: lifecycle.Observation, tries: int = 3
) -> Step[Row, JobStatus] | None:
    return take_step(ledger, Given(observation), RecordedEffects(ledger), tries=tries)


def test_a_decision_is_written_and_returned() -> None:
    ledger = VersionedLedger()
    seen = step(ledger, lifecycle.AttemptStarted(T0))
    assert seen is not None and seen.applied and seen.wrote
    assert seen.status.phase is Phase.PROCESSING and seen.status.attempts == 1
    assert seen.record == ledger.row and seen.job.status == seen.status
    assert seen.conflicts == 0


def test_a_conflict_reads_again_and_decides_on_what_was_written_in_between() -> None:
    ledger = VersionedLedger(Row(processing(), 1))

    def cancel_first(meddled: VersionedLedger) -> None:
        meddled.meddle = lambda _: None
        cancelled = processing().model_copy(
            update={"phase": Phase.CANCELLED, "completed_at": T0, "message": "Job cancelled"}
        )
        meddled.put(cancelled)

    ledger.meddle = cancel_first
    effects = RecordedEffects(ledger)
    exited = lifecycle.RunnerExited(0, DONE, T0 + timedelta(seconds=5))
    seen = take_step(ledger, Given(exited), effects, tries=3)
    # The runner's exit came after the cancel was written: the job stays cancelled, and
    # its end is not announced a second time.
    assert seen is not None and seen.conflicts == 1 and not seen.wrote
    assert ledger.reads == 2 and ledger.writes == []
    assert ledger.row is not None and ledger.row.status.phase is Phase.CANCELLED
    assert effects.done == []


def test_each_try_meeting_a_conflict_is_an_error_and_nothing_is_carried_out() -> None:
    ledger = VersionedLedger(Row(processing(), 1), meddle=lambda m: m.put(processing()))
    effects = RecordedEffects(ledger)
    with pytest.raises(Contended, match="3 tries"):
        take_step(ledger, Given(lifecycle.CancelRequested(T0)), effects, tries=3)
    assert ledger.reads == 3 and ledger.writes == []
    assert effects.done == []


def test_an_unchanged_status_is_not_written() -> None:
    ledger = VersionedLedger(Row(processing(), 7))
    seen = step(ledger, lifecycle.AttemptStarted(T0))  # already running: nothing to start
    assert seen is not None and seen.applied and not seen.wrote
    assert ledger.writes == [] and seen.record == Row(processing(), 7)


def test_actions_are_carried_out_after_the_write_that_decided_them() -> None:
    ledger = VersionedLedger(Row(processing(), 1))
    effects = RecordedEffects(ledger)
    take_step(ledger, Given(lifecycle.CancelRequested(T0)), effects, tries=3)
    # Both seen with version 2: the cancelled status was stored before either ran.
    assert effects.done == [
        (Action.STOP_RUNNER, Phase.CANCELLED, 2),
        (Action.NOTIFY, Phase.CANCELLED, 2),
    ]
    assert [decision.actions for _, decision in ledger.writes] == [
        (Action.STOP_RUNNER, Action.NOTIFY)
    ]


def test_a_failed_write_carries_out_nothing() -> None:
    class Down(Exception):
        pass

    def refuse(_: VersionedLedger) -> None:
        raise Down

    ledger = VersionedLedger(Row(processing(), 1), meddle=refuse)
    effects = RecordedEffects(ledger)
    with pytest.raises(Down):
        take_step(ledger, Given(lifecycle.CancelRequested(T0)), effects, tries=3)
    assert ledger.reads == 1 and effects.done == []


def test_an_unchanged_expiry_is_still_carried_out() -> None:
    ended = JobStatus(phase=Phase.COMPLETE, attempts=1, completed_at=T0)
    ledger = VersionedLedger(Row(ended, 4))
    effects = RecordedEffects(ledger)
    seen = take_step(ledger, Given(lifecycle.TimePassed(T0 + timedelta(hours=1))), effects, tries=3)
    assert seen is not None and not seen.wrote
    assert effects.done == [(Action.EXPIRE, Phase.COMPLETE, 4)]


def test_a_stale_observation_is_not_applied() -> None:
    ledger = VersionedLedger(Row(processing(attempts=2), 1))
    effects = RecordedEffects(ledger)

    def exit_of_attempt_one(record: Row, job: Job) -> lifecycle.Observation | None:
        # An exit reported for attempt 1 while attempt 2 runs belongs to a replaced runner.
        return None if job.status.attempts != 1 else lifecycle.RunnerExited(1, DONE, T0)

    seen = take_step(ledger, exit_of_attempt_one, effects, tries=3)
    assert seen is not None and not seen.applied and not seen.wrote
    assert seen.status.phase is Phase.PROCESSING and effects.done == []


def test_an_amendment_alone_is_written() -> None:
    ledger = VersionedLedger(Row(processing(), 1))
    effects = RecordedEffects(ledger)

    def with_message(status: JobStatus) -> JobStatus:
        return status.model_copy(update={"message": "page 3 of 9"})

    seen = take_step(ledger, nothing, effects, tries=3, amend=with_message)
    assert seen is not None and not seen.applied and seen.wrote
    assert ledger.row is not None and ledger.row.status.message == "page 3 of 9"
    assert effects.done == []


def test_a_job_that_is_gone_takes_no_step() -> None:
    ledger = VersionedLedger(None)
    assert step(ledger, lifecycle.CancelRequested(T0)) is None
