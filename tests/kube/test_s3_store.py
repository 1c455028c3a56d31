"""The S3 store deletes one object through the store protocol, on the rig's real MinIO:
the Kubernetes backend drops an upload no DocumentJob took this way."""

from __future__ import annotations

import uuid

from minio import Minio

from docjobs.storage.s3 import S3Store


def test_an_s3_delete_removes_that_object_only(s3: Minio) -> None:
    store = S3Store(s3, f"delete-{uuid.uuid4().hex[:12]}")
    store.prepare()
    try:
        store.put_bytes("acme/job_a/input-1", b"first", "application/pdf")
        store.put_bytes("acme/job_a/input-2", b"second", "application/pdf")

        store.delete("acme/job_a/input-1")
        store.delete("acme/job_a/input-1")  # gone already: no error

        assert not store.exists("acme/job_a/input-1")
        assert b"".join(store.iter_chunks("acme/job_a/input-2")) == b"second"
    finally:
        store.delete_prefix("acme")
        s3.remove_bucket(store.bucket)
