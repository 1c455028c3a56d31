"""Finished jobs archived to MinIO by a real operator: their DocumentJobs leave the API
server, every read through both API families answers as before, and at their TTL they are
gone."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
import requests

from docjobs.kube.client import KubeClient
from docjobs.kube.paths import documentjobs_path
from tests.conftest import Server
from tests.kube.conftest import Operator
from tests.rig.fixtures import wait_for

JOBS = 3
ARCHIVE_AFTER = 2
"""Seconds: long enough to read each job as it ends, before it is archived."""
TTL = 30
"""Seconds: long enough to read every job once all are archived."""
TENANT = "archivist"


@pytest.fixture
def operator_env() -> dict[str, str]:
    return {"DOCJOBS_OPERATOR__ARCHIVE_AFTER_SECONDS": str(ARCHIVE_AFTER)}


@pytest.fixture
def api_env() -> dict[str, str]:
    return {"DOCJOBS_JOBS__TTL_SECONDS": str(TTL)}


def _reads(server: Server, key: str, job_id: str) -> tuple[Any, ...]:
    headers = {"X-API-Key": key}
    job = requests.get(f"{server.base}/api/v1/jobs/{job_id}", headers=headers, timeout=10)
    result = requests.get(f"{server.base}/api/v1/jobs/{job_id}/result", headers=headers, timeout=10)
    parse = requests.get(f"{server.base}/v1/jobs/{job_id}", headers=headers, timeout=10)
    return job.status_code, job.json(), result.status_code, result.content, parse.json()


def test_finished_jobs_are_archived_and_read_the_same(
    kube_server: Server, operator: Operator, kube: KubeClient, namespace: str
) -> None:
    key = kube_server.key(TENANT)
    headers = {"X-API-Key": key}
    job_ids = []
    for n in range(JOBS):
        accepted = requests.post(
            f"{kube_server.base}/api/v1/convert/text-to-pdf?async=true",
            headers=headers,
            data={"content": f"a letter to keep, number {n}"},
            timeout=30,
        )
        assert accepted.status_code == 202, accepted.text
        job_ids.append(accepted.json()["job_id"])

    before: dict[str, tuple[Any, ...]] = {}

    def read_as_they_end() -> bool:
        operator.check_alive()
        for job_id in job_ids:
            if job_id not in before:
                reads = _reads(kube_server, key, job_id)
                if reads[1]["status"] == "complete":
                    before[job_id] = reads
        return len(before) == JOBS

    wait_for(read_as_they_end, 180, 0.1, what="the jobs to complete")
    listed = requests.get(f"{kube_server.base}/api/v1/jobs", headers=headers, timeout=10).json()
    documentjobs = documentjobs_path(namespace)
    wait_for(lambda: not kube.get(documentjobs)["items"], 60, 0.5, what="jobs archived")

    for job_id in job_ids:
        assert _reads(kube_server, key, job_id) == before[job_id]
    after = requests.get(f"{kube_server.base}/api/v1/jobs", headers=headers, timeout=10).json()
    assert after == listed
    assert [job["job_id"] for job in after["jobs"]] == job_ids[::-1]

    last_end = max(_ended(before[job_id][1]) for job_id in job_ids)
    time.sleep(max(last_end + TTL + 2 - time.time(), 0))
    for job_id in job_ids:
        gone = requests.get(f"{kube_server.base}/api/v1/jobs/{job_id}", headers=headers)
        assert gone.status_code == 404, gone.text
        assert (
            requests.get(f"{kube_server.base}/v1/jobs/{job_id}", headers=headers).status_code == 404
        )
    emptied = requests.get(f"{kube_server.base}/api/v1/jobs", headers=headers, timeout=10).json()
    assert emptied["total"] == 0 and emptied["jobs"] == []


def _ended(job: dict[str, Any]) -> float:
    return datetime.fromisoformat(job["completed_at"].replace("Z", "+00:00")).timestamp()
