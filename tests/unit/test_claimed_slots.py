"""Sync requests in kubernetes mode hold their tenant's slots: the API claims no job for a
tenant already at its cap, and the operator counts claimed jobs as running."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from docjobs.backends.dependencies import DependencyMonitor
from docjobs.backends.kubernetes.claimed import ClaimedJobs
from docjobs.config import OperatorSettings, Settings
from docjobs.domain.clock import utcnow
from docjobs.domain.models import Job
from docjobs.kube.cache import WatchCache
from docjobs.kube.claims import Claim
from docjobs.kube.resources import job_of
from docjobs.operator.agenda import Ref
from docjobs.operator.controller import Controller
from tests.unit.test_documentjob_spec import documentjob_resource


def documentjob(job_id: str, tenant: str, phase: str, claimed: bool = False) -> dict[str, Any]:
    resource = documentjob_resource(job_id, tenant)
    resource["metadata"]["resourceVersion"] = "1"
    if claimed:
        resource["metadata"]["annotations"] = Claim("api-0/7", utcnow(), 30).annotations()
    resource["status"] = {"phase": phase, "attempts": 1 if phase == "Processing" else 0}
    return resource


def claimed_jobs(tmp_path: Path, cap: int, *running: dict[str, Any]) -> ClaimedJobs:
    settings = Settings(
        data_dir=tmp_path, jobs={"max_running_per_tenant": cap}, kubernetes={"sync_workers": 4}
    )
    cache: WatchCache[Job] = WatchCache(None, "/documentjobs", job_of)  # type: ignore[arg-type]
    for resource in running:
        cache.observe(resource)
    return ClaimedJobs(settings, None, cache, DependencyMonitor({}))  # type: ignore[arg-type]


def test_no_claim_for_a_tenant_at_its_cap(tmp_path: Path) -> None:
    busy = documentjob("job_" + "a" * 24, "acme", "Processing")
    claimed = claimed_jobs(tmp_path, 2, busy)

    async def reserve(tenant: str) -> Claim | None:
        return await claimed.reserve(tenant)

    # One runs (a runner Job or another API pod's claim), one claim of this pod: the cap.
    assert asyncio.run(reserve("acme")) is not None
    assert asyncio.run(reserve("acme")) is None
    assert asyncio.run(reserve("other")) is not None
    # A create that failed gives its claim back: the tenant has a slot again.
    claimed.unreserve("acme")
    assert asyncio.run(reserve("acme")) is not None


def test_without_a_cap_only_the_warm_workers_bound_the_claims(tmp_path: Path) -> None:
    claimed = claimed_jobs(tmp_path, 0)

    async def reserve_all() -> list[Claim | None]:
        return [await claimed.reserve("acme") for _ in range(5)]

    assert [c is not None for c in asyncio.run(reserve_all())] == [True] * 4 + [False]


def test_the_operator_counts_a_claimed_job_as_running_from_its_creation() -> None:
    controller = Controller(
        None,  # type: ignore[arg-type]
        OperatorSettings(),
        None,
        lambda job, namespace: None,
        max_running_per_tenant=1,
    )
    claimed = documentjob("job_" + "b" * 24, "acme", "Pending", claimed=True)
    controller.track("ADDED", claimed)
    waiting = Ref("docjobs", "job-" + "c" * 24)
    assert controller.slots.take(waiting, "acme") == 1
    assert controller.slots.take(Ref("docjobs", "job-" + "d" * 24), "other") is None
    # Its end frees the slot, and the job waiting for it is looked at again.
    claimed["status"] = {"phase": "Complete", "attempts": 1}
    controller.track("MODIFIED", claimed)
    assert controller.slots.take(waiting, "acme") is None
