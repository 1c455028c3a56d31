"""Playing the operator's part, and reading the API, in kubernetes-mode tests."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import requests

from tests.conftest import Server
from tests.rig.fixtures import wait_for
from tests.rig.kubeapi import Kube


def documentjob(kube: Kube, ns: str, job_id: str) -> dict[str, Any]:
    name = job_id.replace("_", "-")
    return kube.get(f"/apis/docjobs.io/v1alpha1/namespaces/{ns}/documentjobs/{name}")


def patch_status(kube: Kube, ns: str, job_id: str, status: dict[str, Any]) -> None:
    """What the operator would do: a merge patch of the status subresource."""
    name = job_id.replace("_", "-")
    path = f"/apis/docjobs.io/v1alpha1/namespaces/{ns}/documentjobs/{name}/status"
    kube.patch(path, {"status": status})


def api_status(server: Server, key: str, job_id: str, want: str, timeout: float = 20) -> dict:
    """Poll the API until the job reads ``want``."""

    def read() -> dict | None:
        body = requests.get(
            f"{server.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}, timeout=10
        ).json()
        return body if body.get("status") == want else None

    return wait_for(read, timeout, 0.1, what=f"job {job_id} to read {want!r}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
