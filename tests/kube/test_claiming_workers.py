"""Worker pods on the rig: a real ``docjobs workers`` process claims the DocumentJobs a real
operator leaves to it for its grace, and runs them on warm engines, so a burst of one-page
documents starts no runner pod; killed with SIGKILL mid-burst, every job still ends once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from docjobs.kube.client import KubeClient
from docjobs.kube.paths import jobs_path
from docjobs.kube.resources import LABEL_JOB
from docjobs.storage.s3 import S3Store
from tests.operator.conftest import Jobs, free_port, store  # noqa: F401
from tests.receivers import serve
from tests.rig.fixtures import Cluster, wait_for

from .conftest import Operator
from .helpers import WorkerPod, start_worker_pod

BURST = 40
GRACE_SECONDS = 60
"""The operator's grace: longer than the burst takes, so no job should need a runner Job
while a worker pod is up."""
CLAIM_SECONDS = 5
MARKDOWN = {"kind": "convert", "sourceFormat": "markdown"}
JSON_TO_PDF = {"kind": "convert", "sourceFormat": "json"}
TEXT = {"kind": "convert", "sourceFormat": "text"}
WEBHOOKS = {"DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true"}
OUTCOME = re.compile(r"/attempts/\d+\.json$")
"""An attempt's outcome object, not the manifest or progress beside it."""


@pytest.fixture
def operator_env() -> dict[str, str]:
    return {"DOCJOBS_OPERATOR__CLAIM_GRACE_SECONDS": str(GRACE_SECONDS), **WEBHOOKS}


@pytest.fixture
def jobs(cluster: Cluster, store: S3Store, namespace: str, crd: None) -> Jobs:  # noqa: F811
    return Jobs(cluster.api(), store, namespace)


@pytest.fixture
def start_workers(
    cluster: Cluster,
    namespace: str,
    tmp_path: Path,
    operator: Operator,
) -> Iterator[Callable[[], WorkerPod]]:
    """Starts worker pods (after the operator, which stops after them)."""
    started: list[WorkerPod] = []

    def start() -> WorkerPod:
        pod = start_worker_pod(
            cluster, namespace, tmp_path / f"workers-{len(started)}.log", 2, CLAIM_SECONDS
        )
        started.append(pod)
        return pod

    yield start
    for pod in started:
        pod.stop()


def rerun(kube: KubeClient, namespace: str) -> set[str]:
    """The DocumentJobs that got a runner Job."""
    return {job["metadata"]["labels"][LABEL_JOB] for job in kube.items(jobs_path(namespace))}


def statuses(jobs: Jobs) -> dict[str, dict[str, Any]]:
    """Every DocumentJob's status, from one list."""
    return {r["metadata"]["name"]: r.get("status") or {} for r in jobs.api.items(jobs.path())}


def stored_outcomes(s3: Minio, bucket: str, jobs: Jobs, name: str) -> list[dict[str, Any]]:
    """The outcomes stored for ``name``'s attempts (``attempts/<n>.json``)."""
    spec = jobs.get(name)["spec"]
    prefix = f"{spec['tenant']}/{spec['jobId']}/attempts/"
    found = []
    for item in s3.list_objects(bucket, prefix=prefix):
        if item.is_dir or not OUTCOME.search(str(item.object_name)):
            continue
        answer = s3.get_object(bucket, str(item.object_name))
        try:
            found.append(json.loads(answer.read()))
        finally:
            answer.close()
            answer.release_conn()
    return found


def ended(jobs: Jobs, names: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        now = statuses(jobs)
        return all(now[n].get("phase") in ("Complete", "Failed", "Cancelled") for n in names)

    return check


def settled(jobs: Jobs, names: list[str]) -> Callable[[], bool]:
    """Every end event delivered (the operator delivers what the workers ended)."""

    def check() -> bool:
        now = statuses(jobs)
        return all((now[n].get("webhooks") or {}).get("state") == "Done" for n in names)

    return check


def one_page(i: int) -> bytes:
    return f"# Document {i}\n\nOne page of **markdown**.".encode()


def test_a_burst_runs_on_a_worker_pod_without_runner_pods(
    jobs: Jobs,
    kube: KubeClient,
    s3: Minio,
    cluster: Cluster,
    start_workers: Callable[[], WorkerPod],
) -> None:
    bucket = cluster.s3["bucket"]
    with serve([(200, {}, b"{}")]) as receiver:
        pod = start_workers()
        hook = f"{receiver.url}/hook"
        long_text = "\n".join(f"line {i} of a long document" for i in range(40_000))
        cancelled = jobs.submit(TEXT, long_text.encode(), "text/plain", webhook_url=hook)
        jobs.wait(cancelled, ("Processing",), timeout=60)
        jobs.api.merge_patch(jobs.path(cancelled), {"spec": {"cancel": True}})
        names = [
            jobs.submit(MARKDOWN, one_page(i), "text/markdown", webhook_url=hook)
            for i in range(BURST)
        ]
        corrupt = jobs.submit(JSON_TO_PDF, b'{"total": ', "application/json", webhook_url=hook)
        everything = [*names, corrupt, cancelled]

        wait_for(ended(jobs, everything), 300, 0.5, what="every job to end")
        wait_for(settled(jobs, everything), 120, 0.5, what="every end event delivered")

        assert rerun(kube, jobs.ns) == set()
        for name in names:
            status = jobs.status(name)
            assert status["phase"] == "Complete" and status["attempts"] == 1, status
            (outcome,) = stored_outcomes(s3, bucket, jobs, name)
            assert outcome["exit_code"] == 0
        failed = jobs.status(corrupt)
        assert failed["phase"] == "Failed" and failed["error"]["reason"] == "InvalidJSON", failed
        assert jobs.status(cancelled)["phase"] == "Cancelled"
        assert stored_outcomes(s3, bucket, jobs, cancelled) == []
        ids = [r.headers["webhook-id"] for r in receiver.received]
        assert len(ids) == len(everything) == len(set(ids))
        assert 'docjobs_workers_claims_total{outcome="claimed"} 42.0' in pod.metrics()


def test_a_worker_pod_killed_mid_burst_leaves_every_job_ending_once(
    jobs: Jobs,
    kube: KubeClient,
    s3: Minio,
    cluster: Cluster,
    start_workers: Callable[[], WorkerPod],
) -> None:
    bucket = cluster.s3["bucket"]
    with serve([(200, {}, b"{}")]) as receiver:
        first = start_workers()
        hook = f"{receiver.url}/hook"
        names = [
            jobs.submit(MARKDOWN, one_page(i), "text/markdown", webhook_url=hook)
            for i in range(BURST)
        ]

        def some_done() -> bool:
            now = statuses(jobs)
            return sum(now[n].get("phase") == "Complete" for n in names) >= 8

        wait_for(some_done, 180, 0.1, what="part of the burst done")
        first.kill()
        # What the killed pod left: claimed jobs still Processing, with or without an outcome.
        now = statuses(jobs)
        left = [n for n in names if now[n].get("phase") == "Processing"]
        had_outcome = {n for n in left if stored_outcomes(s3, bucket, jobs, n)}
        start_workers()  # the Deployment's replacement takes the pending ones

        wait_for(ended(jobs, names), 300, 0.5, what="every job to end")
        wait_for(settled(jobs, names), 120, 0.5, what="every end event delivered")

        for name in names:
            status = jobs.status(name)
            assert status["phase"] == "Complete" and status["attempts"] == 1, status
            outcomes = stored_outcomes(s3, bucket, jobs, name)
            assert [o["exit_code"] for o in outcomes] == [0], (name, outcomes)
        # A lapsed claim whose outcome was stored is ended from it, never run as a Job.
        ran_as_jobs = rerun(kube, jobs.ns)
        assert ran_as_jobs <= set(left) - had_outcome, (ran_as_jobs, left, had_outcome)
        ids = [r.headers["webhook-id"] for r in receiver.received]
        assert len(ids) == len(names) == len(set(ids))
