"""How the operator reads attempts that hit a ceiling: failed for good, never run again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from docjobs.domain import lifecycle
from docjobs.domain.models import (
    EXIT_PERMANENT,
    ConvertToPdf,
    InputRef,
    JobSpec,
    JobStatus,
    OcrSimple,
    Operation,
    Phase,
    RetryPolicy,
)
from docjobs.operator.builders import (
    JobEnd,
    RunnerExit,
    observation_of,
    reported,
    runner_exit,
    settle,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(operation: Operation) -> JobSpec:
    return JobSpec(
        job_id="job_1",
        tenant="t",
        operation=operation,
        input=InputRef(
            key="t/job_1/input",
            file_name="a.html",
            content_type="text/html",
            sha256="0" * 64,
            size=1,
        ),
        retry_policy=RetryPolicy(max_attempts=3),
        created_at=NOW,
    )


def ended(spec: JobSpec, end: JobEnd, exit: RunnerExit | None) -> JobStatus:
    """The DocumentJob's status after its first attempt's Job ended so."""
    started = lifecycle.decide(spec, JobStatus(), lifecycle.AttemptStarted(NOW))
    signal = observation_of(end, exit, NOW)
    observation = signal if reported(end, exit) else settle(signal, None)
    return lifecycle.decide(spec, started.status, observation).status


def oom_killed_pod() -> dict[str, Any]:
    terminated = {
        "exitCode": 137,
        "reason": "OOMKilled",
        "finishedAt": "2026-01-01T00:00:05Z",
    }
    return {
        "status": {"containerStatuses": [{"name": "runner", "state": {"terminated": terminated}}]}
    }


def test_a_runner_killed_at_its_memory_limit_fails_the_job_naming_the_ceiling() -> None:
    exit = runner_exit([oom_killed_pod()])
    assert exit is not None and exit.reason == "OOMKilled"
    observation = observation_of(JobEnd(False, "BackoffLimitExceeded", ""), exit, NOW)
    assert isinstance(observation, lifecycle.RunnerExited)
    assert observation.exit_code == EXIT_PERMANENT
    status = ended(job(OcrSimple()), JobEnd(False, "BackoffLimitExceeded", ""), exit)
    assert status.phase is Phase.FAILED and status.attempts == 1
    assert status.error is not None and status.error.reason == "MemoryCeilingExceeded"
    assert status.error.permanent and "limits.memory" in status.error.message


def test_a_runner_that_exited_on_its_own_is_not_taken_for_out_of_memory() -> None:
    exit = RunnerExit(137, "", "Error")
    status = ended(job(OcrSimple()), JobEnd(False, "BackoffLimitExceeded", ""), exit)
    assert status.phase is Phase.RETRYING


def test_a_conversion_past_its_deadline_is_not_run_again() -> None:
    deadline = JobEnd(False, "DeadlineExceeded", "Job was active longer than specified")
    conversion = ended(job(ConvertToPdf(source_format="html")), deadline, RunnerExit(143, ""))
    assert conversion.phase is Phase.FAILED and conversion.attempts == 1
    assert conversion.error is not None and conversion.error.reason == "DeadlineExceeded"
    assert conversion.error.permanent
    ocr = ended(job(OcrSimple()), deadline, RunnerExit(143, ""))
    assert ocr.phase is Phase.RETRYING
