"""Deleting one object: the backends' way to drop an upload no job took, through the store
protocol; a runner's presigned store refuses it before anything is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from docjobs.domain.models import InputRef, JobSpec
from docjobs.storage.local import LocalStore
from docjobs.storage.presigned import AttemptManifest, KeyNotGranted, PresignedStore


def test_a_local_delete_removes_that_object_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    store.put_bytes("acme/job_a/input-1", b"first", "application/pdf")
    store.put_bytes("acme/job_a/input-2", b"second", "application/pdf")

    store.delete("acme/job_a/input-1")
    store.delete("acme/job_a/input-1")  # gone already: no error

    assert not store.exists("acme/job_a/input-1")
    assert b"".join(store.iter_chunks("acme/job_a/input-2")) == b"second"
    with pytest.raises(ValueError, match="invalid object key"):
        store.delete("acme/../other")


def test_a_runner_may_not_delete_even_an_object_it_may_write() -> None:
    spec = JobSpec(
        job_id="job_" + "a" * 24,
        tenant="acme",
        operation={"kind": "ocr.simple"},
        input=InputRef(
            key="acme/in", file_name="a.pdf", content_type="application/pdf", sha256="0", size=1
        ),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    manifest = AttemptManifest(
        spec=spec,
        attempt=1,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        put={"acme/job/result.json": "http://store.invalid/put"},
    )
    # Nothing answers at that address: a request sent would fail otherwise.
    store = PresignedStore(manifest)

    with pytest.raises(KeyNotGranted, match="may not delete"):
        store.delete("acme/job/result.json")
