"""Erasing a finished job in kubernetes mode, with the operator running: its objects leave
MinIO, its DocumentJob leaves the API server, and nothing brings either back."""

from __future__ import annotations

import time

import requests

from docjobs.kube.client import KubeError
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import resource_name
from tests.kube.conftest import Operator
from tests.kube.helpers import api_status
from tests.rig.fixtures import wait_for


def _objects(s3, cluster, prefix: str) -> list[str]:
    found = s3.list_objects(cluster.s3["bucket"], prefix=prefix, recursive=True)
    return [o.object_name for o in found]


def _exists(kube, namespace: str, job_id: str) -> bool:
    try:
        kube.get(documentjobs_path(namespace, resource_name(job_id)))
    except KubeError as exc:
        if exc.not_found:
            return False
        raise
    return True


def test_a_finished_job_is_erased_from_minio_and_the_api_server(
    kube_server, operator: Operator, kube, s3, cluster, namespace
) -> None:
    key = kube_server.key("forgetful")
    headers = {"X-API-Key": key}
    erased = []
    for n, family in enumerate(("/api/v1/jobs", "/v1/jobs")):
        accepted = requests.post(
            f"{kube_server.base}/api/v1/convert/text-to-pdf?async=true",
            headers=headers,
            data={"content": f"a letter to forget, number {n}"},
            timeout=30,
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        operator.check_alive()
        api_status(kube_server, key, job_id, "complete", timeout=180)
        prefix = f"forgetful/{job_id}/"
        stored = _objects(s3, cluster, prefix)
        assert any("input" in name for name in stored) and any("result" in n for n in stored)

        response = requests.delete(f"{kube_server.base}{family}/{job_id}", headers=headers)
        assert response.status_code == 204, response.text
        gone = requests.get(f"{kube_server.base}/api/v1/jobs/{job_id}", headers=headers)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "job_not_found"
        assert _objects(s3, cluster, prefix) == []
        wait_for(
            lambda job_id=job_id: not _exists(kube, namespace, job_id),
            30,
            0.2,
            what="the DocumentJob to be deleted",
        )
        erased.append(job_id)

    # A while later, with the operator still running: nothing came back.
    time.sleep(3)
    operator.check_alive()
    for job_id in erased:
        assert not _exists(kube, namespace, job_id)
        assert _objects(s3, cluster, f"forgetful/{job_id}/") == []
        again = requests.get(f"{kube_server.base}/api/v1/jobs/{job_id}", headers=headers)
        assert again.status_code == 404
    listed = requests.get(f"{kube_server.base}/api/v1/jobs", headers=headers).json()
    assert listed["total"] == 0 and listed["jobs"] == []
