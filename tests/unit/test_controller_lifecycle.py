"""The operator's controller through a DocumentJob's lifecycle, in process: start, success,
retry after the backoff, permanent failure, cancel, deadline, a vanished runner, expiry.

The controller runs against the fake API server; the test acts as the Job controller and
the kubelet (see :mod:`tests.unit.operated`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from docjobs.domain.clock import utcnow
from docjobs.domain.models import RetryPolicy
from docjobs.kube.paths import documentjobs_path, jobs_path
from docjobs.kube.status import parse_time
from docjobs.operator import builders
from docjobs.storage.base import manifest_key
from tests.unit.operated import NS, TENANT, Operated, failure, operated, success


@pytest.fixture
def op(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path)
    yield made
    made.controller.stop()


def test_a_new_job_starts_attempt_one_as_a_runner_job_with_its_manifest(op: Operated) -> None:
    name = op.submit()
    op.start(name)

    status = op.status(name)
    assert status["phase"] == "Processing" and status["attempts"] == 1, status
    assert status["currentJob"] == f"{name}-a1"
    assert op.runner_jobs() == [f"{name}-a1"]
    job = op.runner_job(f"{name}-a1")
    assert builders.owner_uid(job) == op.resource(name)["metadata"]["uid"]
    manifest = manifest_key(TENANT, op.job_id(name), 1)
    assert op.store.exists(manifest)
    assert op.manifest_url(f"{name}-a1").startswith(op.store.path(manifest).as_uri())
    # A second look at a running attempt creates nothing more.
    op.start(name)
    assert op.runner_jobs() == [f"{name}-a1"]


def test_a_runner_that_succeeds_completes_the_job_and_announces_it_once(op: Operated) -> None:
    name = op.submit()
    op.start(name)

    op.finish(f"{name}-a1", 0, success(TENANT, op.job_id(name)))

    status = op.status(name)
    assert status["phase"] == "Complete" and status["attempts"] == 1, status
    assert status["result"]["key"] == success(TENANT, op.job_id(name)).result.key
    assert status["webhooks"]["event"]
    assert [job.spec.job_id for job, _ in op.ended] == [op.job_id(name)]
    op.start(name)  # a late look changes nothing
    assert len(op.ended) == 1 and op.runner_jobs() == [f"{name}-a1"]


def test_a_failed_attempt_runs_again_only_after_its_backoff(op: Operated) -> None:
    name = op.submit(retry=RetryPolicy(initial_backoff_seconds=2))
    op.start(name)

    op.finish(f"{name}-a1", 1, failure("EngineCrashed", permanent=False))

    retrying = op.status(name)
    assert retrying["phase"] == "Retrying" and retrying["attempts"] == 1, retrying
    next_at = parse_time(retrying["nextAttemptAt"])
    assert next_at is not None and next_at > utcnow()
    op.start(name)  # before it is due: nothing starts
    assert op.runner_jobs() == [f"{name}-a1"]
    assert op.status(name)["phase"] == "Retrying"

    time.sleep(max((next_at - utcnow()).total_seconds(), 0) + 0.05)
    op.start(name)

    status = op.status(name)
    assert status["phase"] == "Processing" and status["attempts"] == 2, status
    assert op.runner_jobs() == [f"{name}-a1", f"{name}-a2"]
    op.finish(f"{name}-a2", 0, success(TENANT, op.job_id(name)))
    assert op.status(name)["phase"] == "Complete"


def test_exit_42_fails_the_job_for_good_after_one_attempt(op: Operated) -> None:
    name = op.submit(retry=RetryPolicy(initial_backoff_seconds=0))
    op.start(name)

    op.finish(f"{name}-a1", 42, failure("UnreadableDocument", permanent=True))

    status = op.status(name)
    assert status["phase"] == "Failed" and status["attempts"] == 1, status
    assert status["error"]["reason"] == "UnreadableDocument" and status["error"]["permanent"]
    assert op.runner_jobs() == [f"{name}-a1"]
    assert len(op.ended) == 1


def test_the_last_attempt_failing_fails_the_job(op: Operated) -> None:
    name = op.submit(retry=RetryPolicy(max_attempts=1))
    op.start(name)

    op.finish(f"{name}-a1", 1, failure("EngineCrashed", permanent=False))

    status = op.status(name)
    assert status["phase"] == "Failed" and status["attempts"] == 1, status
    assert len(op.ended) == 1


def test_cancel_deletes_the_runner_job_and_cancels_the_job(op: Operated) -> None:
    name = op.submit()
    op.start(name)

    op.cancel(name)
    op.start(name)  # kopf's field handler on spec.cancel

    status = op.status(name)
    assert status["phase"] == "Cancelled" and "result" not in status, status
    assert op.runner_jobs() == []
    assert len(op.ended) == 1


def test_a_deadline_ends_the_attempt_and_a_conversion_is_not_run_again(op: Operated) -> None:
    name = op.submit()
    op.start(name)

    op.finish(f"{name}-a1", None, reason="DeadlineExceeded")

    status = op.status(name)
    assert status["phase"] == "Failed" and status["attempts"] == 1, status
    assert status["error"]["reason"] == "DeadlineExceeded"
    assert op.runner_jobs() == [f"{name}-a1"]


def test_a_vanished_runner_job_counts_as_a_lost_attempt_and_runs_again(op: Operated) -> None:
    name = op.submit(retry=RetryPolicy(initial_backoff_seconds=0))
    op.start(name)

    op.kube.delete(jobs_path(NS, f"{name}-a1"))
    op.deliver()

    status = op.status(name)
    assert status["attempts"] == 2 and status["phase"] == "Processing", status
    assert status["error"]["reason"] == "RunnerLost"
    assert op.runner_jobs() == [f"{name}-a2"]


def test_a_runner_job_that_failed_without_a_pod_is_a_lost_runner(op: Operated) -> None:
    name = op.submit(retry=RetryPolicy(initial_backoff_seconds=30))
    op.start(name)

    op.finish(f"{name}-a1", None, reason="BackoffLimitExceeded")

    status = op.status(name)
    assert status["phase"] == "Retrying" and status["error"]["reason"] == "RunnerLost", status


def test_a_runner_killed_at_its_memory_limit_fails_naming_the_ceiling(op: Operated) -> None:
    name = op.submit()
    op.start(name)

    op.finish(f"{name}-a1", 137, None, oom=True)

    status = op.status(name)
    assert status["phase"] == "Failed", status
    assert status["error"]["reason"] == "MemoryCeilingExceeded"


def test_a_finished_job_expires_with_its_objects(op: Operated) -> None:
    name = op.submit(ttl_seconds_after_finished=0)
    op.start(name)
    job_id = op.job_id(name)
    op.store_outcome(name, 1)
    op.finish(f"{name}-a1", 0, success(TENANT, job_id))
    assert op.store.exists(f"{TENANT}/{job_id}/input")

    op.start(name)  # the agenda's look once its time to live has passed

    assert op.kube.stored(documentjobs_path(NS, name)) is None
    assert not op.store.exists(f"{TENANT}/{job_id}/input")
    assert not list(op.store.folders(f"{TENANT}/{job_id}/"))
