"""A claimed job's end is known to its API process, for the sync request waiting on it, as
the status write that completes the job is sent: on the fake API server, with a real warm
worker and a local object store (``Claims``), and the operator's controller for what a
crash right after the answer leaves."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path

from docjobs.config import OperatorSettings
from docjobs.domain.clock import utcnow
from docjobs.domain.models import Job, Phase
from docjobs.kube.claims import Claim
from docjobs.kube.client import JSON
from docjobs.kube.paths import documentjobs_path
from tests.fakekube import FakeKube, SigningLocalStore
from tests.unit.operated import NS, Operated, wait_until
from tests.unit.test_claimed_jobs import CLAIM_SECONDS, Claims, _phases

SECONDS = 30.0


async def _answered(claims: Claims, name: str) -> Job:
    """The end the sync request waiting on ``name`` is answered with: as the backend's wait
    does, woken when this process announces it."""
    changed = asyncio.Event()
    with claims.claimed.ends.watch(name, changed):
        while (job := claims.claimed.ends.decided(name)) is None:
            await asyncio.wait_for(changed.wait(), SECONDS)
            changed.clear()
    return job


def test_the_sync_answer_comes_before_the_complete_write_and_reads_wait_for_it(
    tmp_path: Path,
) -> None:
    claims = Claims(tmp_path, FakeKube())
    write_may_land = threading.Event()

    async def scenario() -> tuple[Job, str | None, bool, Job | None, JSON]:
        await claims.start()
        try:
            created = await claims.create(b"answered before its end is written")
            name = created["metadata"]["name"]
            status_path = documentjobs_path(NS, name, "status")
            # The Processing write goes through; the Complete write is held on its way.
            claims.kube.before(
                "PATCH",
                status_path,
                lambda: claims.kube.before(
                    "PATCH", status_path, lambda: write_may_land.wait(SECONDS)
                ),
            )
            waiting = asyncio.create_task(_answered(claims, name))
            claims.claimed.run(created)
            answered = await waiting
            cached = claims.cache.get(name)
            phase_then = cached.status.phase.value if cached else None
            read = asyncio.create_task(claims.claimed.ends.settled([name]))
            await asyncio.sleep(0.2)
            read_waited = not read.done()
            write_may_land.set()
            await read
            after = claims.cache.get(name)
            return answered, phase_then, read_waited, after, await claims.ended(name)
        finally:
            write_may_land.set()
            await claims.stop()

    answered, phase_then, read_waited, after, ended = asyncio.run(scenario())

    assert answered.status.phase is Phase.COMPLETE and answered.status.result is not None
    assert claims.store.exists(answered.status.result.key)
    assert phase_then == "Processing", "the answer came once the Complete write had landed"
    assert read_waited, "a read did not wait for the Complete write on its way"
    assert after is not None and after.status.phase is Phase.COMPLETE, after
    status = ended["status"]
    assert status["phase"] == "Complete" and status["attempts"] == 1, status
    assert status["result"]["key"] == answered.status.result.key
    assert _phases(claims.kube, ended["metadata"]["name"]) == ["Processing", "Complete"]
    assert len(claims.claimed.ends) == 0


def test_an_api_that_dies_after_answering_leaves_a_job_the_operator_completes_once(
    tmp_path: Path,
) -> None:
    """The sync request was answered, then the API process died before its Complete write
    (and its claim's release) reached the API server: once the claim lapses, the operator
    completes the job from the outcome the worker stored, with the result the request got,
    and announces its end once, without running it again."""
    kube = FakeKube()
    claims = Claims(tmp_path, kube)

    def died() -> None:
        raise ConnectionResetError("the API process died")

    async def scenario() -> tuple[str, Job]:
        await claims.start()
        try:
            created = await claims.create(b"answered, then the API died")
            name = created["metadata"]["name"]
            path = documentjobs_path(NS, name)
            kube.before(
                "PATCH",
                f"{path}/status",
                lambda: kube.before("PATCH", f"{path}/status", died),
            )
            kube.before("PATCH", path, died)  # the release of its claim
            waiting = asyncio.create_task(_answered(claims, name))
            claims.claimed.run(created)
            answered = await waiting
            for _ in range(int(SECONDS / 0.05)):  # its task is over: nothing more is sent
                if name not in claims.claimed.held:
                    break
                await asyncio.sleep(0.05)
            return name, answered
        finally:
            await claims.stop()

    name, answered = asyncio.run(scenario())
    path = documentjobs_path(NS, name)
    assert (kube.stored(path) or {})["status"]["phase"] == "Processing"

    op = Operated(
        kube,
        SigningLocalStore(tmp_path / "objects"),
        OperatorSettings.model_validate({"runner_image": "docjobs:test"}),
    )
    try:
        lapsed = Claim("api-0/7", utcnow() - timedelta(seconds=CLAIM_SECONDS + 1), CLAIM_SECONDS)
        kube.merge_patch(path, {"metadata": {"annotations": lapsed.annotations()}})
        op.deliver()

        def complete() -> JSON | None:
            op.start(name)
            status = op.status(name)
            return status if status.get("phase") == "Complete" else None

        status = wait_until(complete, SECONDS, f"{name} to complete")
        assert answered.status.result is not None
        assert status["result"]["key"] == answered.status.result.key
        assert status["attempts"] == 1, status
        assert op.runner_jobs() == [], "the job ran again"
        assert [job.spec.job_id for job, _ in op.ended] == [answered.spec.job_id]
    finally:
        op.controller.stop()
