"""What a monthly page quota counts in Kubernetes mode, in process: the API's kube backend
counts its watch cache's jobs that have no usage record yet, and the records the operator
writes, each job once, whether the records it read are fresh or not. On the fake API server
(``tests.fakekube``) with the operator's store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from kubernetes.client import Configuration
from minio import Minio

from docjobs.backends.kubernetes.backend import KubeBackend
from docjobs.config import Settings
from docjobs.domain.clock import iso, utcnow
from docjobs.kube.client import KubeClient
from docjobs.kube.paths import documentjobs_path
from docjobs.storage.s3 import S3Store
from docjobs.usage.objects import usage_folder
from tests.unit.operated import NS, TENANT, Operated, operated, wait_until
from tests.unit.test_usage_operator import UNREACHABLE, _complete

OCR = {"kind": "ocr.simple"}


@pytest.fixture
def op(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path)
    yield made
    made.controller.stop()


def _backend(op: Operated, tmp_path: Path, fresh_seconds: float) -> KubeBackend:
    backend = KubeBackend(
        Settings(
            data_dir=tmp_path,
            kubernetes={"namespace": NS},
            usage={"quota_fresh_seconds": fresh_seconds},
        ),
        KubeClient(Configuration(host=f"http://{UNREACHABLE}")),
        S3Store(Minio(UNREACHABLE, secure=False), "docjobs"),
    )
    backend.objects = op.store  # type: ignore[assignment]  # the operator's store
    return backend


def _counted(backend: KubeBackend, op: Operated, tenant: str = TENANT) -> int:
    """The tenant's pages this month, the backend's cache holding what the API server does."""
    for name in op.kube.names(documentjobs_path(NS)):
        backend.jobs.observe(op.resource(name))
    today = utcnow().date()
    return asyncio.run(backend.quota_month(tenant, today.replace(day=1), today)).pages


def test_each_job_counts_once_from_its_admission_to_its_record(
    op: Operated, tmp_path: Path
) -> None:
    stale = _backend(op, tmp_path / "stale", fresh_seconds=3600)
    fresh = _backend(op, tmp_path / "fresh", fresh_seconds=0)
    done = op.submit(OCR, data=b"%PDF-three pages", page_count=3)
    cancelled = op.submit(OCR, data=b"%PDF-three more", page_count=3)
    selected = op.submit({**OCR, "pages": "2-3"}, data=b"%PDF-five pages", page_count=5)
    op.submit(OCR, tenant="other", data=b"%PDF-another's", page_count=9)
    assert _counted(stale, op) == _counted(fresh, op) == 3 + 3 + 2

    # Ended and recorded: counted from the job until a read finds its record, then from it.
    _complete(op, done, pages=3)
    wait_until(lambda: len(list(op.store.keys(usage_folder(TENANT, NS)))) == 1, what="a record")
    assert _counted(stale, op) == _counted(fresh, op) == 8

    # Cancelled or failed: nothing, whether its record (of no pages) was read or not.
    op.cancel(cancelled)
    op.start(cancelled)
    wait_until(lambda: len(list(op.store.keys(usage_folder(TENANT, NS)))) == 2, what="records")
    assert _counted(stale, op) == _counted(fresh, op) == 3 + 2
    assert _counted(fresh, op, "other") == 9

    # A job that ended last month counts in last month's quota, not in this one's.
    last_month = utcnow().replace(day=1) - timedelta(days=2)
    ended = {"phase": "Complete", "attempts": 1, "completedAt": iso(last_month), "pageCount": 4}
    op.kube.write_status(documentjobs_path(NS, selected), ended)
    assert _counted(stale, op) == _counted(fresh, op) == 3
