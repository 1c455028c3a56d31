"""The queue depth the operator exports, read from the Prometheus registry as a scrape
would: jobs waiting and running per pool and tenant, and the age of each pool's oldest
waiting job, as DocumentJobs go through their lifecycle under a real controller."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from docjobs.domain.clock import utcnow
from docjobs.domain.models import RetryPolicy
from docjobs.kube.claims import Claim
from docjobs.kube.paths import documentjobs_path
from tests.unit.operated import NS, TENANT, Operated, failure, operated, success

DOCTR = {"kind": "ocr.advanced"}


@pytest.fixture
def op(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path)
    yield made
    made.controller.stop()


def waiting(pool: str, tenant: str = TENANT, phase: str = "pending") -> float | None:
    labels = {"pool": pool, "tenant": tenant, "phase": phase}
    return REGISTRY.get_sample_value("docjobs_operator_jobs_waiting", labels)


def running(pool: str, tenant: str = TENANT) -> float | None:
    labels = {"pool": pool, "tenant": tenant}
    return REGISTRY.get_sample_value("docjobs_operator_jobs_running", labels)


def oldest(pool: str) -> float | None:
    return REGISTRY.get_sample_value("docjobs_operator_oldest_waiting_seconds", {"pool": pool})


def test_jobs_count_as_waiting_then_running_then_leave_the_queue(op: Operated) -> None:
    assert oldest("cpu") == 0 and oldest("gpu") == 0  # every pool, before any job
    first, second = op.submit(), op.submit()
    scan = op.submit(DOCTR, tenant="other")

    assert waiting("cpu") == 2 and running("cpu") == 0
    assert waiting("gpu", "other") == 1 and waiting("cpu", "other") is None

    op.start(first)
    assert waiting("cpu") == 1 and running("cpu") == 1

    op.finish(f"{first}-a1", 0, success(TENANT, op.job_id(first)))
    op.start(second)
    op.start(scan)
    assert waiting("cpu") == 0 and running("cpu") == 1
    assert waiting("gpu", "other") == 0 and running("gpu", "other") == 1

    op.cancel(scan)
    op.start(scan)
    op.kube.delete(documentjobs_path(NS, second))
    op.deliver()
    assert running("cpu") == 0 and running("gpu", "other") == 0  # a gauge that fell to 0
    assert oldest("cpu") == 0


def test_the_oldest_waiting_job_ages_from_its_creation_also_behind_a_tenants_cap(
    tmp_path: Path,
) -> None:
    op = operated(tmp_path, cap=1)
    try:
        now = utcnow()
        op.start(op.submit(created_at=now - timedelta(seconds=5)))
        held = op.submit(created_at=now - timedelta(seconds=90))
        op.submit(created_at=now - timedelta(seconds=30))
        op.start(held)  # the tenant's one slot is taken: it stays Pending

        assert op.status(held)["phase"] == "Pending"
        assert waiting("cpu") == 2 and running("cpu") == 1
        age = oldest("cpu")
        assert age is not None and 90 <= age < 120
    finally:
        op.controller.stop()


def test_a_retrying_job_waits_from_the_end_of_its_backoff(op: Operated) -> None:
    name = op.submit(retry=RetryPolicy(initial_backoff_seconds=600))
    op.start(name)

    op.finish(f"{name}-a1", 1, failure("EngineCrashed", permanent=False))

    assert op.status(name)["phase"] == "Retrying"
    assert waiting("cpu", phase="retrying") == 1 and running("cpu") == 0
    assert waiting("cpu") == 0
    assert oldest("cpu") == 0  # due in ten minutes: it has not waited yet


def claimable(pool: str) -> float | None:
    return REGISTRY.get_sample_value("docjobs_operator_jobs_claimable", {"pool": pool})


def test_only_jobs_a_worker_may_take_now_are_claimable(op: Operated) -> None:
    op.submit()  # a line of text to convert
    op.submit(DOCTR)  # needs the GPU image
    op.submit({"kind": "ocr.simple"}, page_count=100)  # runs as shards
    retry = op.submit(retry=RetryPolicy(initial_backoff_seconds=600))
    op.start(retry)
    op.finish(f"{retry}-a1", 1, failure("EngineCrashed", permanent=False))

    assert waiting("cpu") == 2 and waiting("cpu", phase="retrying") == 1
    assert claimable("cpu") == 1 and claimable("gpu") == 0
    after_backoff = op.controller.queue.depth(utcnow() + timedelta(seconds=700))
    assert after_backoff.claimable == {"cpu": 2, "gpu": 0}


def test_a_claimed_job_counts_as_running_from_its_creation(op: Operated) -> None:
    resource = op.prepare()
    claim = Claim(holder="docjobs-workers-0/7", renewed_at=utcnow(), seconds=30)
    resource["metadata"]["annotations"] = claim.annotations()
    op.kube.create(documentjobs_path(NS), resource)
    op.deliver()

    assert running("cpu") == 1 and waiting("cpu") == 0


def test_a_restarted_operator_counts_the_queue_again_from_its_listing(op: Operated) -> None:
    done, started = op.submit(), op.submit()
    op.submit()
    op.start(done)
    op.finish(f"{done}-a1", 0, success(TENANT, op.job_id(done)))
    op.start(started)
    op.controller.stop()

    op.controller = op.new_controller()
    op.delivered = 0  # the restarted operator lists everything again
    op.deliver()

    assert waiting("cpu") == 1 and running("cpu") == 1


def test_without_tenants_the_gauges_sum_over_them(tmp_path: Path) -> None:
    op = operated(tmp_path, queue_metrics_by_tenant=False)
    try:
        op.submit()
        op.start(op.submit(tenant="other"))

        assert waiting("cpu", tenant="") == 1 and running("cpu", tenant="") == 1
        assert waiting("cpu") is None and running("cpu", tenant="other") is None
    finally:
        op.controller.stop()


def test_the_chart_readme_names_only_metrics_that_exist() -> None:
    for exporter in ("docjobs.api.metrics", "docjobs.backends.kubernetes.workers"):
        importlib.import_module(exporter)  # registers its metrics, as its process does

    readme = (Path(__file__).resolve().parents[2] / "charts/docjobs/README.md").read_text()
    named = set(re.findall(r"\bdocjobs_(?:operator|workers|http)_[a-z_]+", readme))
    families = list(REGISTRY.collect())
    exported = {f.name for f in families} | {
        f"{f.name}_total" for f in families if f.type == "counter"
    }
    assert named and named <= exported, named - exported
