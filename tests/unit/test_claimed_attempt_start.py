"""A claimed job's worker starts while the status write that records its attempt is on its
way to the API server, not after it: on the fake API server, with a real warm worker and a
local object store (``Claims``), and the operator's controller for what a crash leaves."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from docjobs.domain.clock import utcnow
from docjobs.kube.client import JSON
from docjobs.kube.paths import documentjobs_path
from tests.fakekube import FakeKube
from tests.unit.operated import NS, operated
from tests.unit.test_claimed_jobs import CLAIM_SECONDS, Claims, _claimed, _phases

WORKER_WAIT_SECONDS = 10.0


@pytest.fixture
def claims(tmp_path: Path) -> Claims:
    return Claims(tmp_path, FakeKube())


def _worker_started(claims: Claims, name: str) -> bool:
    """Whether a worker runs ``name``'s attempt within a few seconds; called by the fake API
    server, in the thread that sends the status write, before it answers."""
    deadline = time.monotonic() + WORKER_WAIT_SECONDS
    while time.monotonic() < deadline:
        if claims.claimed.held.on_worker(name):
            return True
        time.sleep(0.01)
    return False


def test_the_worker_runs_while_the_processing_write_is_on_its_way(claims: Claims) -> None:
    seen: list[bool] = []

    async def scenario() -> JSON:
        await claims.start()
        try:
            created = await claims.create(b"started with its status write")
            name = created["metadata"]["name"]
            status_path = documentjobs_path(NS, name, "status")
            claims.kube.before(
                "PATCH", status_path, lambda: seen.append(_worker_started(claims, name))
            )
            claims.claimed.run(created)
            return await claims.ended(name)
        finally:
            await claims.stop()

    ended = asyncio.run(scenario())

    assert seen == [True], "the worker had not started when the Processing write was sent"
    status = ended["status"]
    assert status["phase"] == "Complete" and status["attempts"] == 1, status
    assert claims.store.exists(status["result"]["key"])
    assert _phases(claims.kube, ended["metadata"]["name"]) == ["Processing", "Complete"]


def test_a_job_cancelled_before_its_processing_write_stops_the_worker_already_started(
    claims: Claims,
) -> None:
    """The operator cancelled the job just before the Processing write landed: the write is
    refused, decided again on the cancelled job and not written; the worker started with it
    is stopped and the job stays Cancelled, without a result."""

    def cancelled_once_running(name: str) -> None:
        assert _worker_started(claims, name)
        path = documentjobs_path(NS, name)
        claims.kube.merge_patch(path, {"spec": {"cancel": True}})
        claims.kube.write_status(path, {"phase": "Cancelled", "completedAt": utcnow().isoformat()})

    async def scenario() -> JSON:
        await claims.start()
        try:
            created = await claims.create(b"cancelled as it started")
            name = created["metadata"]["name"]
            status_path = documentjobs_path(NS, name, "status")
            claims.kube.before("PATCH", status_path, lambda: cancelled_once_running(name))
            claims.claimed.run(created)
            return await claims.ended(name)
        finally:
            await claims.stop()

    ended = asyncio.run(scenario())

    status = ended["status"]
    assert status["phase"] == "Cancelled" and "result" not in status, status
    # Its Processing write was refused (the operator's Cancelled landed first), decided again
    # on the cancelled job, and nothing of the worker's run was written after it.
    assert sorted(_phases(claims.kube, ended["metadata"]["name"])) == ["Cancelled", "Processing"]


def test_a_holder_that_dies_before_its_processing_write_leaves_a_job_the_operator_completes(
    tmp_path: Path,
) -> None:
    """The worker stored its attempt's outcome, then the holder died before any status
    write: once the claim lapses, the operator starts that attempt, and the outcome it finds
    stored completes the job (the runner Job started meanwhile is not waited for)."""
    op = operated(tmp_path)
    try:
        name = _claimed(op, renewed_ago=CLAIM_SECONDS + 1, phase=None)
        outcome = op.store_outcome(name, 1)

        op.start(name)
        op.start(name)  # the next look at the job

        status = op.status(name)
        assert status["phase"] == "Complete" and status["attempts"] == 1, status
        assert outcome.summary.result is not None
        assert status["result"]["key"] == outcome.summary.result.key
        assert len(op.ended) == 1
    finally:
        op.controller.stop()
