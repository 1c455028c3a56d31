"""The job state machine: terminal phases are final, attempts stay within the policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from docjobs.domain import lifecycle
from docjobs.domain.lifecycle import Action
from docjobs.domain.models import (
    ConvertToPdf,
    InputRef,
    JobError,
    JobSpec,
    JobStatus,
    OcrSimple,
    Phase,
    ResultRef,
    RetryPolicy,
    RunnerSummary,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec(max_attempts: int = 3, ttl: int = 3600) -> JobSpec:
    return JobSpec(
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
        retry_policy=RetryPolicy(max_attempts=max_attempts),
        ttl_seconds_after_finished=ttl,
        created_at=T0,
    )


OK = RunnerSummary(
    result=ResultRef(key="t/job_1/result.json", content_type="application/json", size=2)
)
BAD = RunnerSummary(error=JobError(reason="UnreadableDocument", message="bad", permanent=True))

offsets = st.integers(min_value=0, max_value=10_000).map(lambda s: T0 + timedelta(seconds=s))
observations = st.one_of(
    st.builds(lifecycle.AttemptStarted, at=offsets),
    st.builds(
        lifecycle.RunnerExited,
        exit_code=st.sampled_from([0, 1, 42, -9, 137]),
        summary=st.sampled_from([OK, BAD, RunnerSummary()]),
        at=offsets,
    ),
    st.builds(lifecycle.RunnerLost, reason=st.just("lost"), at=offsets),
    st.builds(lifecycle.AttemptTimedOut, at=offsets),
    st.builds(lifecycle.CancelRequested, at=offsets),
    st.builds(lifecycle.TimePassed, at=offsets),
)


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=1, max_value=5), st.lists(observations, max_size=40))
def test_terminal_is_final_and_attempts_bounded(max_attempts: int, seen: list) -> None:
    job = spec(max_attempts)
    status = JobStatus()
    for observation in seen:
        before = status
        status = lifecycle.decide(job, status, observation).status
        assert status.attempts <= max_attempts
        assert status.attempts >= before.attempts
        if before.phase.terminal:
            assert status == before


def run(job: JobSpec, *observations: lifecycle.Observation) -> lifecycle.Decision:
    status = JobStatus()
    decision = lifecycle.Decision(status)
    for observation in observations:
        decision = lifecycle.decide(job, decision.status, observation)
    return decision


def test_success_completes_and_notifies() -> None:
    decision = run(spec(), lifecycle.AttemptStarted(T0), lifecycle.RunnerExited(0, OK, T0))
    assert decision.status.phase is Phase.COMPLETE
    assert decision.status.result == OK.result
    assert decision.actions == (Action.NOTIFY,)


def test_exit_42_fails_at_once_with_the_runner_reason() -> None:
    decision = run(spec(), lifecycle.AttemptStarted(T0), lifecycle.RunnerExited(42, BAD, T0))
    assert decision.status.phase is Phase.FAILED
    assert decision.status.attempts == 1
    assert decision.status.error and decision.status.error.reason == "UnreadableDocument"
    assert decision.status.error.permanent


def test_transient_failures_back_off_5_then_25_seconds_then_fail() -> None:
    job = spec()
    first = run(job, lifecycle.AttemptStarted(T0), lifecycle.RunnerExited(1, RunnerSummary(), T0))
    assert first.status.phase is Phase.RETRYING
    assert first.status.next_attempt_at == T0 + timedelta(seconds=5)
    early = lifecycle.decide(job, first.status, lifecycle.AttemptStarted(T0 + timedelta(seconds=4)))
    assert early.status == first.status
    t1 = T0 + timedelta(seconds=5)
    second = lifecycle.decide(job, first.status, lifecycle.AttemptStarted(t1))
    second = lifecycle.decide(job, second.status, lifecycle.RunnerExited(1, RunnerSummary(), t1))
    assert second.status.next_attempt_at == t1 + timedelta(seconds=25)
    t2 = t1 + timedelta(seconds=25)
    third = lifecycle.decide(job, second.status, lifecycle.AttemptStarted(t2))
    third = lifecycle.decide(job, third.status, lifecycle.RunnerExited(1, RunnerSummary(), t2))
    assert third.status.phase is Phase.FAILED
    assert third.status.attempts == 3


def test_cancel_while_processing_stops_the_runner() -> None:
    decision = run(spec(), lifecycle.AttemptStarted(T0), lifecycle.CancelRequested(T0))
    assert decision.status.phase is Phase.CANCELLED
    assert decision.actions == (Action.STOP_RUNNER, Action.NOTIFY)


def test_finished_jobs_expire_after_their_ttl() -> None:
    job = spec(ttl=60)
    done = run(job, lifecycle.AttemptStarted(T0), lifecycle.RunnerExited(0, OK, T0)).status
    assert (
        lifecycle.decide(job, done, lifecycle.TimePassed(T0 + timedelta(seconds=59))).actions == ()
    )
    late = lifecycle.decide(job, done, lifecycle.TimePassed(T0 + timedelta(seconds=60)))
    assert late.actions == (Action.EXPIRE,)


def test_lost_runner_counts_the_attempt_and_waits_out_the_backoff() -> None:
    job = spec()
    first = run(job, lifecycle.AttemptStarted(T0), lifecycle.RunnerLost("pod deleted", T0))
    assert first.status.phase is Phase.RETRYING and first.status.attempts == 1
    assert first.status.error is not None and first.status.error.reason == "RunnerLost"
    assert first.status.next_attempt_at == T0 + timedelta(seconds=5)
    assert not lifecycle.is_runnable(first.status, T0 + timedelta(seconds=4))
    t1 = T0 + timedelta(seconds=5)
    second = lifecycle.decide(job, first.status, lifecycle.AttemptStarted(t1))
    second = lifecycle.decide(job, second.status, lifecycle.RunnerLost("pod deleted", t1))
    # The second loss waits 25 s, as the retry policy says, not a moment less.
    assert second.status.next_attempt_at == t1 + timedelta(seconds=25)
    early = lifecycle.decide(
        job, second.status, lifecycle.AttemptStarted(t1 + timedelta(seconds=24))
    )
    assert early.status.attempts == 2 and early.status.phase is Phase.RETRYING
    t2 = t1 + timedelta(seconds=25)
    third = lifecycle.decide(job, second.status, lifecycle.AttemptStarted(t2))
    third = lifecycle.decide(job, third.status, lifecycle.RunnerLost("pod deleted", t2))
    assert third.status.phase is Phase.FAILED and third.status.attempts == 3
    assert third.status.error is not None and third.status.error.reason == "RetriesExhausted"


def test_a_second_timed_out_attempt_fails_the_job_with_attempts_left() -> None:
    job = spec(max_attempts=5)
    first = run(job, lifecycle.AttemptStarted(T0), lifecycle.AttemptTimedOut(T0))
    assert first.status.phase is Phase.RETRYING
    t1 = T0 + timedelta(seconds=5)
    second = lifecycle.decide(job, first.status, lifecycle.AttemptStarted(t1))
    second = lifecycle.decide(job, second.status, lifecycle.AttemptTimedOut(t1))
    assert second.status.phase is Phase.FAILED and second.status.attempts == 2
    assert second.status.error is not None and second.status.error.reason == "DeadlineExceeded"
    assert second.actions == (Action.NOTIFY,)


def test_a_timeout_after_another_failure_is_still_retried() -> None:
    job = spec(max_attempts=5)
    first = run(job, lifecycle.AttemptStarted(T0), lifecycle.RunnerExited(1, RunnerSummary(), T0))
    t1 = T0 + timedelta(seconds=5)
    second = lifecycle.decide(job, first.status, lifecycle.AttemptStarted(t1))
    second = lifecycle.decide(job, second.status, lifecycle.AttemptTimedOut(t1))
    assert second.status.phase is Phase.RETRYING


def test_a_conversion_that_ran_out_of_time_fails_at_once() -> None:
    conversion = spec(max_attempts=5).model_copy(
        update={"operation": ConvertToPdf(source_format="html")}
    )
    decision = run(conversion, lifecycle.AttemptStarted(T0), lifecycle.AttemptTimedOut(T0))
    assert decision.status.phase is Phase.FAILED and decision.status.attempts == 1
    error = decision.status.error
    assert error is not None and error.reason == "DeadlineExceeded" and error.permanent
    assert decision.actions == (Action.NOTIFY,)
    # OCR that ran out of time gets another attempt: an engine may have been starved.
    ocr = run(spec(max_attempts=5), lifecycle.AttemptStarted(T0), lifecycle.AttemptTimedOut(T0))
    assert ocr.status.phase is Phase.RETRYING
    assert ocr.status.error is not None and not ocr.status.error.permanent
