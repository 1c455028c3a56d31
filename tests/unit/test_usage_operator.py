"""Usage in Kubernetes mode, in process: the operator writes one usage record per ended
DocumentJob to the object store, whoever ended it; a restarted operator that sees the same
ends again counts none of them twice; the API's kube backend reads the records back."""

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
from docjobs.usage.objects import StoredUsage, usage_folder
from docjobs.usage.records import CPU_SECONDS, UsageRecord
from tests.unit.operated import NS, TENANT, Operated, operated, success, wait_until

UNREACHABLE = "127.0.0.1:9"


@pytest.fixture
def op(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path)
    yield made
    made.controller.stop()


def _records(op: Operated) -> list[str]:
    return list(op.store.keys(usage_folder(TENANT, NS)))


def _complete(op: Operated, name: str, pages: int) -> None:
    summary = success(TENANT, op.job_id(name))
    details = {CPU_SECONDS: 0.25, "pages_by_tier": {"tesseract": pages - 1, "doctr": 1}}
    op.start(name)
    op.finish(f"{name}-a1", 0, summary.model_copy(update={"page_count": pages, "details": details}))


def _read(op: Operated, tenant: str = TENANT) -> list[UsageRecord]:
    day = utcnow().date()
    return list(StoredUsage(op.store, NS).records(tenant, day, day))


def test_an_ended_job_has_one_record_and_a_restart_counts_it_once(op: Operated) -> None:
    done = op.submit({"kind": "ocr.simple"}, data=b"%PDF-three pages", page_count=3)
    _complete(op, done, pages=3)
    cancelled = op.submit()
    op.cancel(cancelled)
    op.start(cancelled)  # kopf's handler of spec.cancel
    wait_until(lambda: len(_records(op)) == 2, what="two usage records")

    # The operator restarts: its first listing shows both ended jobs again.
    op.controller.stop()
    op.controller = op.new_controller()
    op.delivered = 0
    op.deliver()
    wait_until(lambda: all(not op.controller.usage.due(op.resource(n)) for n in (done, cancelled)))
    assert len(_records(op)) == 2

    records = {record.job_id: record for record in _read(op)}
    assert set(records) == {op.job_id(done), op.job_id(cancelled)}
    ocr = records[op.job_id(done)]
    assert (ocr.status, ocr.operation, ocr.tier) == ("complete", "ocr.simple", "tesseract")
    assert dict(ocr.pages) == {"tesseract": 2, "doctr": 1}
    assert ocr.input_bytes == len(b"%PDF-three pages") and ocr.cpu_seconds == 0.25
    assert records[op.job_id(cancelled)].status == "cancelled"
    assert dict(records[op.job_id(cancelled)].pages) == {}


def test_a_job_ended_by_another_writer_is_recorded_by_the_operator(op: Operated) -> None:
    """An API pod's warm workers end a claimed job themselves: the operator still counts it,
    and an operator that was down meanwhile counts it when it comes back."""
    name = op.submit()
    op.controller.stop()
    ended = {"phase": "Complete", "attempts": 1, "completedAt": iso(utcnow()), "pageCount": 2}
    op.kube.write_status(documentjobs_path(NS, name), ended)
    op.controller = op.new_controller()
    op.delivered = 0
    op.deliver()
    wait_until(lambda: len(_records(op)) == 1, what="a usage record")
    (record,) = _read(op)
    assert record.job_id == op.job_id(name) and dict(record.pages) == {"convert": 2}


def test_the_kube_backend_reads_the_tenants_usage(op: Operated, tmp_path: Path) -> None:
    _complete(op, op.submit(), pages=2)
    _complete(op, op.submit(tenant="other"), pages=5)
    wait_until(lambda: len(list(op.store.keys(usage_folder("other", NS)))) == 1)
    wait_until(lambda: len(_records(op)) == 1)
    client = KubeClient(Configuration(host=f"http://{UNREACHABLE}"))
    backend = KubeBackend(
        Settings(data_dir=tmp_path, kubernetes={"namespace": NS}),
        client,
        S3Store(Minio(UNREACHABLE, secure=False), "docjobs"),
    )
    backend.objects = op.store  # type: ignore[assignment]  # the operator's store
    day = utcnow().date()

    mine = asyncio.run(backend.usage(TENANT, day, day))
    everyone = asyncio.run(backend.usage(None, day, day))
    yesterday = day - timedelta(days=1)

    assert [r.page_total for r in mine] == [2] and mine[0].tenant == TENANT
    assert sorted((r.tenant, r.page_total) for r in everyone) == [(TENANT, 2), ("other", 5)]
    assert asyncio.run(backend.usage(TENANT, yesterday, yesterday)) == []
