"""The API in Kubernetes mode keeps a job's webhook deliveries only while its watch cache
holds the job: jobs created and deleted leave nothing behind in its memory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes.client.configuration import Configuration
from minio import Minio

from docjobs.backends.kubernetes.backend import KubeBackend
from docjobs.config import Settings
from docjobs.kube.client import KubeClient
from docjobs.storage.s3 import S3Store
from tests.unit.test_documentjob_spec import documentjob_resource

JOBS = 2000
UNREACHABLE = "127.0.0.1:9"
"""Nothing listens here: the backend is fed watch events, it never calls out."""


def ended_with_webhook(job_id: str, version: int) -> dict[str, Any]:
    resource = documentjob_resource(job_id)
    resource["metadata"]["resourceVersion"] = str(version)
    now = datetime.now(UTC).isoformat()
    resource["status"] = {
        "phase": "Complete",
        "webhooks": {
            "event": "job.completed",
            "state": "Done",
            "deliveries": [
                {
                    "target": "https://hooks.example.com/x",
                    "webhookId": "msg_1",
                    "state": "Delivered",
                    "attempts": [{"at": now, "statusCode": 200, "durationMs": 3}],
                    "updatedAt": now,
                }
            ],
        },
    }
    return resource


def test_deleted_jobs_leave_no_delivery_notes(tmp_path: Path) -> None:
    client = KubeClient(Configuration(host=f"http://{UNREACHABLE}"))
    objects = S3Store(Minio(UNREACHABLE, secure=False), "docjobs")
    backend = KubeBackend(Settings(data_dir=tmp_path), client, objects)
    version = 0

    def watched(kind: str, resource: dict[str, Any]) -> None:
        nonlocal version
        version += 1
        resource["metadata"]["resourceVersion"] = str(version)
        backend.jobs._apply({"type": kind, "object": resource}, str(version))

    kept = f"job_{'f' * 24}"
    watched("ADDED", ended_with_webhook(kept, version))
    for n in range(JOBS):
        job_id = f"job_{n:024x}"
        resource = ended_with_webhook(job_id, version)
        watched("ADDED", resource)
        assert [d.delivered for d in backend.webhooks.deliveries(job_id)] == [True]
        if n % 2:  # the operator's finalizer holds it a while first
            resource["metadata"]["deletionTimestamp"] = datetime.now(UTC).isoformat()
            watched("MODIFIED", resource)
        watched("DELETED", resource)
        assert backend.webhooks.deliveries(job_id) == []

    assert [d.delivered for d in backend.webhooks.deliveries(kept)] == [True]
    assert list(backend._delivery_notes) == [kept.replace("_", "-")]
