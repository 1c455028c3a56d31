"""Claims in process: the API's ``ClaimedJobs`` runs a sync job on a real warm worker under a
claim and writes its status itself; the operator's controller honours a held claim and takes
over a lapsed one, where the outcome the holder stored wins. Both on the fake API server and
a local object store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from docjobs.backends.dependencies import DependencyMonitor
from docjobs.backends.kubernetes.claimed import ClaimedJobs
from docjobs.config import Settings
from docjobs.domain.clock import utcnow
from docjobs.domain.models import Job
from docjobs.kube.cache import WatchCache
from docjobs.kube.claims import Claim
from docjobs.kube.client import JSON
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import job_of
from docjobs.storage.local import LocalStore
from tests.fakekube import FakeKube
from tests.unit.operated import NS, TENANT, Operated, documentjob, operated

CLAIM_SECONDS = 30


@pytest.fixture
def op(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path)
    yield made
    made.controller.stop()


def _claimed(op: Operated, renewed_ago: float, phase: str | None) -> str:
    """A DocumentJob an API pod created under its claim, renewed ``renewed_ago`` seconds ago,
    whose status the API wrote as ``phase`` (attempt 1)."""
    resource = op.prepare()
    claim = Claim("api-0/7", utcnow() - timedelta(seconds=renewed_ago), CLAIM_SECONDS)
    resource["metadata"]["annotations"] = claim.annotations()
    op.kube.create(documentjobs_path(NS), resource)
    name = str(resource["metadata"]["name"])
    if phase is not None:
        status = {"phase": phase, "attempts": 1, "startedAt": utcnow().isoformat()}
        op.kube.write_status(documentjobs_path(NS, name), status)
    op.deliver()
    return name


# --- the operator's side ---------------------------------------------------------------------


@pytest.mark.parametrize("phase", [None, "Processing"], ids=["just created", "running"])
def test_the_operator_starts_no_job_for_a_held_claim(op: Operated, phase: str | None) -> None:
    name = _claimed(op, renewed_ago=1, phase=phase)

    op.start(name)

    assert op.runner_jobs() == []
    status = op.status(name)
    assert status.get("phase", "Pending") == (phase or "Pending"), status
    assert status.get("attempts", 0) == (1 if phase else 0)
    assert op.ended == []


def test_a_lapsed_claims_stored_outcome_wins_over_a_second_run(op: Operated) -> None:
    """The holder's worker stored its outcome, then the holder died before its status write:
    the operator completes the job from that outcome and starts no Job."""
    name = _claimed(op, renewed_ago=CLAIM_SECONDS + 1, phase="Processing")
    outcome = op.store_outcome(name, 1)

    op.start(name)

    status = op.status(name)
    assert status["phase"] == "Complete" and status["attempts"] == 1, status
    assert outcome.summary.result is not None
    assert status["result"]["key"] == outcome.summary.result.key
    assert op.runner_jobs() == []
    assert len(op.ended) == 1


def test_a_lapsed_claim_without_an_outcome_runs_its_attempt_as_a_job(op: Operated) -> None:
    name = _claimed(op, renewed_ago=CLAIM_SECONDS + 1, phase="Processing")

    op.start(name)

    status = op.status(name)
    assert status["phase"] == "Processing" and status["attempts"] == 1, status
    assert status["currentJob"] == f"{name}-a1"
    assert op.runner_jobs() == [f"{name}-a1"]


def test_a_claim_that_lapses_before_the_api_started_the_job_is_run_as_a_job(
    op: Operated,
) -> None:
    name = _claimed(op, renewed_ago=CLAIM_SECONDS + 1, phase=None)

    op.start(name)

    assert op.status(name)["attempts"] == 1
    assert op.runner_jobs() == [f"{name}-a1"]


# --- the API's side --------------------------------------------------------------------------


class Claims:
    """``ClaimedJobs`` as the Kubernetes backend builds it, on the fake API server, with a
    watch cache fed by the fake's watch and one real warm worker."""

    def __init__(self, tmp_path: Path, kube: FakeKube) -> None:
        self.settings = Settings(
            data_dir=tmp_path,
            kubernetes={"namespace": NS, "sync_workers": 1, "claim_seconds": CLAIM_SECONDS},
        )
        self.kube = kube
        self.store = LocalStore(tmp_path / "objects")
        self.cache: WatchCache[Job] = WatchCache(
            kube,  # type: ignore[arg-type]
            documentjobs_path(NS),
            job_of,
            watch_timeout_seconds=5,
        )
        self.monitor = DependencyMonitor({})
        self.claimed = ClaimedJobs(
            self.settings,
            kube,  # type: ignore[arg-type]
            self.cache,
            self.monitor,
        )

    async def start(self) -> None:
        self.cache.start(asyncio.get_running_loop())
        assert await asyncio.to_thread(self.cache.wait_ready, 10)
        await self.claimed.start()

    async def stop(self) -> None:
        await self.claimed.stop()
        self.cache.stop()

    async def create(self, data: bytes) -> JSON:
        """As the backend submits a sync job: reserve a claim, create the DocumentJob under
        it; the created resource, for :meth:`ClaimedJobs.run`."""
        claim = await self.claimed.reserve(TENANT)
        assert claim is not None
        resource = documentjob(self.store, data=data, interactive=True)
        resource["metadata"]["annotations"] = claim.annotations()
        created = self.kube.create(documentjobs_path(NS), resource)
        self.cache.observe(created)
        return created

    async def ended(self, name: str, timeout: float = 60) -> JSON:
        """The DocumentJob once it ended and its worker is free again (the one worker
        can be reserved: the claimed run is over)."""
        path = documentjobs_path(NS, name)
        for _ in range(int(timeout / 0.05)):
            found = self.kube.stored(path) or {}
            phase = (found.get("status") or {}).get("phase")
            if phase in ("Complete", "Failed", "Cancelled") and await self.claimed.reserve(TENANT):
                self.claimed.unreserve(TENANT)
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} did not end: {self.kube.stored(path)}")


@pytest.fixture
def claims(tmp_path: Path) -> Claims:
    return Claims(tmp_path, FakeKube())


def _phases(kube: FakeKube, name: str) -> list[str]:
    """The phases of the status writes of ``name``, in order."""
    path = documentjobs_path(NS, name, "status")
    return [str(((c.body or {}).get("status") or {}).get("phase")) for c in kube.writes(path)]


def test_a_claimed_job_runs_on_a_warm_worker_and_ends_with_one_status_write(
    claims: Claims,
) -> None:
    async def scenario() -> JSON:
        await claims.start()
        try:
            created = await claims.create(b"claimed and converted")
            claims.claimed.run(created)
            return await claims.ended(created["metadata"]["name"])
        finally:
            await claims.stop()

    ended = asyncio.run(scenario())

    name = ended["metadata"]["name"]
    status = ended["status"]
    assert status["phase"] == "Complete" and status["attempts"] == 1, status
    assert claims.store.exists(status["result"]["key"])
    assert _phases(claims.kube, name) == ["Processing", "Complete"]
    assert status["webhooks"]["state"] == "Pending"  # the operator delivers the end event
    assert claims.kube.names("/apis/batch/v1/namespaces/docjobs/jobs") == []


def test_a_conflicting_write_reads_again_and_decides_again(claims: Claims) -> None:
    """The operator cancelled the job while the worker ran (spec and status written): the
    claim's final write gets a conflict, reads the cancelled job, and leaves it cancelled."""

    def cancelled_meanwhile(name: str) -> None:
        path = documentjobs_path(NS, name)
        claims.kube.merge_patch(path, {"spec": {"cancel": True}})
        status = (claims.kube.stored(path) or {}).get("status") or {}
        claims.kube.write_status(
            path, {**status, "phase": "Cancelled", "completedAt": utcnow().isoformat()}
        )

    async def scenario() -> JSON:
        await claims.start()
        try:
            created = await claims.create(b"cancelled while it ran")
            name = created["metadata"]["name"]
            status_path = documentjobs_path(NS, name, "status")
            # The first status write (Processing) goes through; just before the second,
            # the operator's writes land.
            claims.kube.before(
                "PATCH",
                status_path,
                lambda: claims.kube.before("PATCH", status_path, lambda: cancelled_meanwhile(name)),
            )
            claims.claimed.run(created)
            return await claims.ended(name)
        finally:
            await claims.stop()

    ended = asyncio.run(scenario())

    name = ended["metadata"]["name"]
    assert ended["status"]["phase"] == "Cancelled", ended["status"]
    assert "result" not in ended["status"]
    # Its end was refused once and, decided again on the cancelled job, never written.
    writes = _phases(claims.kube, name)
    assert writes[:2] == ["Processing", "Complete"] and "Complete" not in writes[2:], writes


def test_a_conflict_with_a_renewal_writes_the_end_once_on_the_fresh_object(
    claims: Claims,
) -> None:
    async def scenario() -> JSON:
        await claims.start()
        try:
            created = await claims.create(b"renewed while it ran")
            path = documentjobs_path(NS, created["metadata"]["name"])
            renewal = {"metadata": {"labels": {"touched": "yes"}}}
            claims.kube.before(
                "PATCH",
                f"{path}/status",
                lambda: claims.kube.before(
                    "PATCH", f"{path}/status", lambda: claims.kube.merge_patch(path, renewal)
                ),
            )
            claims.claimed.run(created)
            return await claims.ended(created["metadata"]["name"])
        finally:
            await claims.stop()

    ended = asyncio.run(scenario())

    assert ended["status"]["phase"] == "Complete", ended["status"]
    assert ended["metadata"]["labels"]["touched"] == "yes"
    writes = _phases(claims.kube, ended["metadata"]["name"])
    assert writes == ["Processing", "Complete", "Complete"], "refused once, then written"
