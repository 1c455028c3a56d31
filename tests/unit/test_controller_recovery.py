"""The operator's controller when things go wrong, in process: the outcome a runner stored
wins over every later signal about its attempt, attempts survive an operator restart at any
point, and a step that fails (API server or object store down) is looked at again after a
doubling delay, never dropped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from docjobs.domain.clock import utcnow
from docjobs.domain.models import RetryPolicy
from docjobs.kube.paths import documentjobs_path, jobs_path
from docjobs.storage.base import outcome_key
from tests.unit.operated import NS, TENANT, Operated, operated, success, wait_until


@pytest.fixture
def op(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path)
    yield made
    made.controller.stop()


def _killed(op: Operated, name: str) -> None:
    """Killed after it stored its outcome, before it could report it."""
    op.finish(f"{name}-a1", 137)


def _deadline(op: Operated, name: str) -> None:
    op.finish(f"{name}-a1", None, reason="DeadlineExceeded")


def _pod_lost(op: Operated, name: str) -> None:
    op.finish(f"{name}-a1", None, reason="BackoffLimitExceeded")


def _job_vanished(op: Operated, name: str) -> None:
    op.kube.delete(jobs_path(NS, f"{name}-a1"))
    op.deliver()


def _job_still_running(op: Operated, name: str) -> None:
    op.start(name)  # the periodic look at a running attempt


@pytest.mark.parametrize(
    "then",
    [_killed, _deadline, _pod_lost, _job_vanished, _job_still_running],
    ids=["killed", "deadline", "pod lost", "Job vanished", "Job still running"],
)
def test_a_stored_outcome_is_the_attempts_result(
    op: Operated, then: Callable[[Operated, str], None]
) -> None:
    name = op.submit(retry=RetryPolicy(initial_backoff_seconds=0))
    op.start(name)
    outcome = op.store_outcome(name, 1)

    then(op, name)

    status = op.status(name)
    assert status["phase"] == "Complete" and status["attempts"] == 1, status
    assert outcome.summary.result is not None
    assert status["result"]["key"] == outcome.summary.result.key
    assert f"{name}-a2" not in op.runner_jobs()
    assert op.runner_jobs() == (
        [] if then in (_job_vanished, _job_still_running) else [f"{name}-a1"]
    )
    assert len(op.ended) == 1


def test_a_stored_failure_is_the_attempts_result_too(op: Operated) -> None:
    name = op.submit(retry=RetryPolicy(initial_backoff_seconds=0))
    op.start(name)
    op.store_outcome(name, 1, exit_code=42)

    _deadline(op, name)

    status = op.status(name)
    assert status["phase"] == "Failed" and status["error"]["reason"] == "Broken", status


def test_an_operator_restarted_between_the_job_and_its_record_adopts_the_job(
    op: Operated,
) -> None:
    """Attempt n is written, then its Job created, then ``currentJob`` set: an operator that
    died in between finds the Job on its next look and adopts it, running nothing twice."""
    name = op.submit()
    status_path = documentjobs_path(NS, name, "status")
    op.kube.before("POST", jobs_path(NS), lambda: op.kube.fail("PUT", status_path, 500))
    with pytest.raises(Exception, match="500"):
        op.controller.reconcile(op.ref(name))
    assert op.status(name)["phase"] == "Processing" and "currentJob" not in op.status(name)
    assert op.runner_jobs() == [f"{name}-a1"]
    op.controller.stop()

    op.controller = op.new_controller()
    op.delivered = 0  # the restarted operator lists everything again
    op.deliver()
    op.start(name)

    status = op.status(name)
    assert status["attempts"] == 1 and status["currentJob"] == f"{name}-a1", status
    assert op.runner_jobs() == [f"{name}-a1"]
    op.finish(f"{name}-a1", 0, success(TENANT, op.job_id(name)))
    assert op.status(name)["phase"] == "Complete"


def test_a_restarted_operator_finds_a_job_that_ended_while_it_was_down(op: Operated) -> None:
    name = op.submit()
    op.start(name)
    op.controller.stop()
    runner = op.runner_job(f"{name}-a1")
    op.write_pod(runner, 0, success(TENANT, op.job_id(name)))
    op.kube.write_status(
        jobs_path(NS, f"{name}-a1"), {"conditions": [{"type": "Complete", "status": "True"}]}
    )

    op.controller = op.new_controller()
    op.start(name)  # kopf's resume handler

    assert op.status(name)["phase"] == "Complete"


def test_a_failed_step_is_looked_at_again_after_a_doubling_delay(op: Operated) -> None:
    name = op.submit()
    op.start(name)
    path = documentjobs_path(NS, name)
    op.kube.fail("GET", path, 500, times=2)

    def looks() -> int:
        return sum(1 for c in op.kube.calls if c.verb == "GET" and c.path == path)

    # The Job's end arrives while the API server fails: kopf never retries an event handler.
    # Times are taken before each failure, so "not due yet" holds however slow the machine.
    first_failure = utcnow()
    op.finish(f"{name}-a1", 0, success(TENANT, op.job_id(name)))
    assert op.status(name)["phase"] == "Processing"

    before = looks()
    op.controller.tick(first_failure + timedelta(seconds=0.5))  # not due yet: 1 s
    time.sleep(0.3)
    assert looks() == before, "looked again before the delay"
    second_failure = utcnow()
    op.controller.tick(utcnow() + timedelta(seconds=1.1))
    wait_until(lambda: looks() > before, what="the first look again")
    time.sleep(0.3)  # that look failed too
    assert op.status(name)["phase"] == "Processing"

    before = looks()
    op.controller.tick(second_failure + timedelta(seconds=1.5))  # the delay doubled: 2 s
    time.sleep(0.3)
    assert looks() == before, "looked again before the doubled delay"
    op.controller.tick(utcnow() + timedelta(seconds=2.1))

    wait_until(lambda: op.status(name).get("phase") == "Complete", what="the job to complete")
    assert op.status(name)["attempts"] == 1


def test_a_job_end_read_while_the_object_store_is_down_waits_for_the_outcome(
    op: Operated, tmp_path: Path
) -> None:
    """A deadline during a store outage is neither dropped nor taken as a timeout while the
    stored outcome cannot be read; once the store answers, the outcome wins."""
    name = op.submit()
    op.start(name)
    outcome = op.store_outcome(name, 1)
    key = outcome_key(TENANT, op.job_id(name), 1)
    real = op.store.iter_chunks

    def unreachable(wanted: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        if wanted == key:
            raise ConnectionRefusedError("object store down")
        return real(wanted, chunk_size)

    op.store.iter_chunks = unreachable  # type: ignore[method-assign]
    _deadline(op, name)
    assert op.status(name)["phase"] == "Processing", op.status(name)

    op.store.iter_chunks = real  # type: ignore[method-assign]
    op.controller.tick(utcnow() + timedelta(seconds=1.1))

    wait_until(lambda: op.status(name).get("phase") == "Complete", what="the stored outcome")
    assert outcome.summary.result is not None
    assert op.status(name)["result"]["key"] == outcome.summary.result.key
    assert op.status(name)["attempts"] == 1
