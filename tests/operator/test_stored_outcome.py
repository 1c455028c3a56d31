"""Finished work never runs again: the outcome a runner stored is its attempt's result, whatever
Kubernetes says about the attempt afterwards (a deadline, a lost pod, a Job still running).

The runner pods here never get their attempt (the URL of their manifest points at a server
that never answers) and the test stores the attempt's outcome itself: exactly the state of a
runner that stored its outcome and whose end Kubernetes never heard of.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from docjobs.config import S3Settings
from docjobs.domain.models import ResultRef, RetryPolicy, RunnerSummary, RunOutcome
from docjobs.operator import builders
from docjobs.storage.base import outcome_key, result_key
from docjobs.storage.s3 import S3Store
from tests.rig.fixtures import wait_for
from tests.rig.minio_server import MinioServer

from .conftest import Jobs, Operator

TENANT = "acme"


def stored_outcomes(store: S3Store, job_id: str) -> list[str]:
    """The attempts that stored an outcome: each one is a run of the document."""
    prefix = f"{TENANT}/{job_id}/attempts/"
    found = store.client.list_objects(store.bucket, prefix=prefix)
    # attempts/<n>/ holds the attempt's manifest; attempts/<n>.json is its outcome.
    return sorted(str(o.object_name).removeprefix(prefix) for o in found if not o.is_dir)


@pytest.fixture
def stalled_runners() -> Iterator[str]:
    """Operator environment that keeps runner pods waiting for their manifest: a listening
    socket that never answers stands in for it (the last of duplicate variables wins)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        yield json.dumps({"DOCJOBS_RUNNER__MANIFEST_URL": f"http://127.0.0.1:{port}/manifest"})


def store_outcome(store: S3Store, job_id: str, attempt: int) -> ResultRef:
    """What a runner stores when its attempt succeeded: the result, then the outcome."""
    data = b"%PDF-1.7 finished before anyone noticed"
    result = ResultRef(
        key=result_key(TENANT, job_id, ".pdf"), content_type="application/pdf", size=len(data)
    )
    store.put_bytes(result.key, data, result.content_type)
    outcome = RunOutcome(exit_code=0, summary=RunnerSummary(result=result, page_count=1))
    store.put_bytes(
        outcome_key(TENANT, job_id, attempt), outcome.model_dump_json().encode(), "application/json"
    )
    return result


@pytest.mark.parametrize("then", ["deadline", "pod deleted", "job still running"])
def test_a_stored_outcome_is_the_attempts_result(
    then: str,
    jobs: Jobs,
    store: S3Store,
    make_operator: Callable[..., Operator],
    stalled_runners: str,
) -> None:
    make_operator(
        # Runner pods wait for their manifest: the attempt ends only as the test says.
        DOCJOBS_OPERATOR__RUNNER_ENV=stalled_runners,
        DOCJOBS_OPERATOR__RESYNC_SECONDS="2" if then == "job still running" else "600",
    )
    resource = jobs.prepare(
        {"kind": "convert", "sourceFormat": "text"},
        b"done once",
        "text/plain",
        tenant=TENANT,
        retry=RetryPolicy(initial_backoff_seconds=0.5),
        timeout_seconds=5 if then == "deadline" else 600,
    )
    jobs.api.create(jobs.path(), resource)
    name = resource["metadata"]["name"]
    job_id = resource["spec"]["jobId"]
    (pod,) = wait_for(lambda: jobs.pods(name, 1), 60, 0.1, what="the runner pod of attempt 1")
    result = store_outcome(store, job_id, 1)
    if then == "pod deleted":
        jobs.api.delete(f"/api/v1/namespaces/{jobs.ns}/pods/{pod['metadata']['name']}")

    status = jobs.wait(name, timeout=90)

    assert status["phase"] == "Complete", status
    assert status["attempts"] == 1, status
    assert status["result"]["key"] == result.key
    assert [
        j["metadata"]["name"]
        for j in jobs.runner_jobs(name)
        if j["metadata"]["name"].endswith("-a2")
    ] == []
    assert stored_outcomes(store, job_id) == ["1.json"]
    if then == "job still running":  # its pod would otherwise wait until the deadline
        wait_for(lambda: not jobs.runner_jobs(name), 30, 0.2, what="the finished Job deleted")


def test_a_job_event_during_an_object_store_outage_is_looked_at_again(
    jobs: Jobs, make_operator: Callable[..., Operator], tmp_path: Path, stalled_runners: str
) -> None:
    minio = MinioServer(tmp_path / "minio" / "data").start()
    try:
        private = S3Store.from_settings(S3Settings.model_validate(minio.settings()))
        make_operator(
            DOCJOBS_OPERATOR__RUNNER_ENV=stalled_runners,
            DOCJOBS_OPERATOR__RESYNC_SECONDS="600",  # only the Job's own event can end it
            **minio.env(),
        )
        resource = jobs.prepare(
            {"kind": "convert", "sourceFormat": "text"},
            b"stored while the store was up",
            "text/plain",
            tenant=TENANT,
            timeout_seconds=4,
        )
        jobs.api.create(jobs.path(), resource)
        name, job_id = resource["metadata"]["name"], resource["spec"]["jobId"]
        wait_for(lambda: jobs.pods(name, 1), 60, 0.1, what="the runner pod of attempt 1")
        result = store_outcome(private, job_id, 1)
        minio.kill()

        # The deadline ends the Job while the store is down: its event must not be dropped,
        # nor taken as a timeout while the stored outcome cannot be read.
        wait_for(lambda: _ended(jobs, name), 60, 0.2, what="the runner Job's deadline")
        time.sleep(12)  # longer than the S3 client's own retries of one request (~6 s)
        held = jobs.status(name)
        assert held["phase"] == "Processing" and held["attempts"] == 1, held

        minio.start()
        back = time.monotonic()
        status = jobs.wait(name, timeout=60)
        resolved = time.monotonic() - back
    finally:
        minio.kill()
    assert status["phase"] == "Complete" and status["attempts"] == 1, status
    assert status["result"]["key"] == result.key
    assert resolved < 15, f"resolved {resolved:.1f} s after the store came back"


def _ended(jobs: Jobs, name: str) -> bool:
    (job,) = jobs.runner_jobs(name)
    return builders.job_end(job) is not None
