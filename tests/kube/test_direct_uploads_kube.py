"""A direct upload in Kubernetes mode on the rig: the document is put to a URL MinIO itself
takes (presigned by the API), so it may be larger than the API's body limit, and a job on
its ``upload_id`` completes. The installation's key prefix is on every object it leaves. A
document in another bucket is read by ``s3://`` reference where the tenant is allowed it."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import requests
from minio import Minio

from tests.conftest import Server
from tests.docs import sentence_lines
from tests.kube.conftest import Operator
from tests.rig.fixtures import Cluster, wait_for

PREFIX = "install-a"
BODY_LIMIT = 16 * 1024
INBOX = "direct-inbox"


@pytest.fixture
def api_env() -> dict[str, str]:
    return {
        "DOCJOBS_S3__KEY_PREFIX": PREFIX,
        "DOCJOBS_LIMITS__MAX_UPLOAD_BYTES": str(BODY_LIMIT),
        "DOCJOBS_INPUTS__TENANT_BUCKETS": json.dumps({"direct-kube": [INBOX]}),
    }


@pytest.fixture
def operator_env() -> dict[str, str]:
    return {"DOCJOBS_S3__KEY_PREFIX": PREFIX}


def test_a_presigned_upload_becomes_a_job_under_the_prefix(
    kube_server: Server, operator: Operator, cluster: Cluster, s3: Minio
) -> None:
    key = kube_server.key("direct-kube")
    headers = {"X-API-Key": key}
    text = "\n".join(sentence_lines(5, 600)).encode()
    assert len(text) > 2 * BODY_LIMIT
    created = requests.post(
        f"{kube_server.base}/api/v1/uploads",
        headers=headers,
        json={"file_name": "big.txt", "content_type": "text/plain", "size": len(text)},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["url"].startswith(("http://", "https://"))
    assert kube_server.base not in upload["url"]  # straight to the object store
    put = requests.put(upload["url"], data=text, headers=upload["headers"], timeout=30)
    assert put.status_code == 200, put.text

    queued = requests.post(
        f"{kube_server.base}/api/v1/convert/text-to-pdf?async=true",
        headers=headers,
        data={"upload_id": upload["upload_id"]},
        timeout=60,
    )
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["job_id"]

    def ended() -> dict[str, Any] | None:
        operator.check_alive()
        job: dict[str, Any] = requests.get(
            f"{kube_server.base}/api/v1/jobs/{job_id}", headers=headers, timeout=10
        ).json()
        return job if job["status"] in ("complete", "failed", "cancelled") else None

    job = wait_for(ended, 120, 0.3, what="the job on the direct upload to end")
    assert job["status"] == "complete", job
    result = requests.get(
        f"{kube_server.base}/api/v1/jobs/{job_id}/result", headers=headers, timeout=30
    )
    assert result.content.startswith(b"%PDF")

    bucket = cluster.s3["bucket"]
    names = [o.object_name or "" for o in s3.list_objects(bucket, recursive=True)]
    mine = [name for name in names if "direct-kube" in name]
    assert any(name.startswith(f"{PREFIX}/direct-kube/{job_id}/input") for name in mine)
    assert any(name.startswith(f"{PREFIX}/direct-kube/{job_id}/result") for name in mine)
    assert all(name.startswith(f"{PREFIX}/") for name in mine), mine
    assert not [name for name in mine if "/.uploads/" in name]  # used, so deleted

    if not s3.bucket_exists(INBOX):
        s3.make_bucket(INBOX)
    note = b"A note left in the inbox bucket."
    s3.put_object(INBOX, "notes/note.txt", io.BytesIO(note), len(note), "text/plain")
    by_reference = requests.post(
        f"{kube_server.base}/api/v1/convert/text-to-pdf",
        headers=headers,
        data={"source_url": f"s3://{INBOX}/notes/note.txt"},
        timeout=120,
    )
    assert by_reference.status_code == 200, by_reference.text
    assert by_reference.content.startswith(b"%PDF")
    stranger = {"X-API-Key": kube_server.key("direct-kube-stranger")}
    refused = requests.post(
        f"{kube_server.base}/api/v1/convert/text-to-pdf",
        headers=stranger,
        data={"source_url": f"s3://{INBOX}/notes/note.txt"},
        timeout=30,
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "source_bucket_not_allowed"
