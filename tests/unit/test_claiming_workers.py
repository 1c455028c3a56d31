"""Worker pods in process: ``ClaimingWorkers`` claims pending DocumentJobs from its watch
cache and runs them on real warm workers, beside a real operator ``Controller`` that leaves
claimable jobs to them for its grace; both on the fake API server (:mod:`tests.fakekube`)
and one local object store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from docjobs.backends.dependencies import DependencyMonitor
from docjobs.backends.kubernetes.probes import serve_probes
from docjobs.backends.kubernetes.workers import ClaimingWorkers
from docjobs.config import Settings
from docjobs.domain.clock import iso, utcnow
from docjobs.kube.claims import Claim, claim_of
from docjobs.kube.client import JSON
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import job_of
from docjobs.operator.status import ClaimGrace, Move, next_move
from tests.conftest import free_port
from tests.unit.operated import NS, TENANT, Operated, operated

GRACE = 30.0
"""The operator's grace in the tests where the workers are up: longer than any test."""
ADVANCED = {"kind": "ocr.advanced", "output": "simple"}
"""docTR: never claimed, it needs the GPU runner image."""


@pytest.fixture
def op(tmp_path: Path) -> Iterator[Operated]:
    made = operated(tmp_path, claim_grace_seconds=GRACE)
    yield made
    made.controller.stop()


def workers_on(
    op: Operated,
    tmp_path: Path,
    holder: str = "workers-0/1",
    concurrency: int = 1,
    claim_seconds: float = 30,
    cap: int = 0,
    engines: list[str] | None = None,
) -> ClaimingWorkers:
    """A worker pod as ``docjobs workers`` builds one, on ``op``'s API server and store."""
    pod: dict[str, Any] = {"concurrency": concurrency, "port": 0}
    if engines is not None:
        pod["engines"] = engines
    settings = Settings(
        data_dir=tmp_path,
        kubernetes={"namespace": NS, "claim_seconds": claim_seconds},
        workers=pod,
        jobs={"max_running_per_tenant": cap},
        runner={"part_pages": op.part_pages},
    )
    workers = ClaimingWorkers(settings, op.kube, DependencyMonitor({}))  # type: ignore[arg-type]
    workers.holder = holder
    return workers


async def until(check: Callable[[], Any], timeout: float = 90, what: str = "") -> Any:
    """``check()``'s first truthy answer, looked for on the loop while the workers run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def phase(op: Operated, name: str) -> str:
    return str(op.status(name).get("phase", "Pending"))


def outcomes(tmp_path: Path, op: Operated, name: str) -> list[str]:
    """The attempt outcomes stored for ``name``'s job."""
    folder = tmp_path / "objects" / TENANT / op.job_id(name) / "attempts"
    return sorted(p.name for p in folder.glob("*.json"))


# --- the operator's grace --------------------------------------------------------------------


def test_the_operator_leaves_an_unclaimed_job_for_its_grace_then_starts_a_job(
    tmp_path: Path,
) -> None:
    op = operated(tmp_path, claim_grace_seconds=1)
    try:
        name = op.submit()
        op.start(name)
        assert op.runner_jobs() == [] and phase(op, name) == "Pending"
        # The agenda looks again when the grace ends, not after the pending safety net.
        look = op.controller.agenda.next_look(op.resource(name), utcnow())
        assert look <= utcnow() + timedelta(seconds=1.5)

        time.sleep(1.5)
        op.start(name)

        assert op.runner_jobs() == [f"{name}-a1"]
        assert phase(op, name) == "Processing"
    finally:
        op.controller.stop()


def test_a_job_no_worker_may_claim_starts_at_once(op: Operated) -> None:
    name = op.submit(ADVANCED, page_count=1)

    op.start(name)

    assert op.runner_jobs() == [f"{name}-a1"]


def test_a_retry_is_left_to_the_workers_for_the_grace_after_its_backoff(op: Operated) -> None:
    resource = op.prepare()
    grace = ClaimGrace(5, op.settings.shard_threshold_pages, op.part_pages)
    now = utcnow().replace(microsecond=0)  # as the wire has it

    def retrying(backoff_ended: float) -> tuple[JSON, Any]:
        ended = iso(now - timedelta(seconds=backoff_ended))
        status = {"phase": "Retrying", "attempts": 1, "nextAttemptAt": ended}
        changed = {**resource, "status": status}
        return changed, job_of(changed)

    assert next_move(*retrying(1), now, grace) is Move.OFFERED
    assert next_move(*retrying(6), now, grace) is Move.START
    assert next_move(*retrying(1), now) is Move.START  # no grace: as before
    due = op.controller.agenda.next_look(retrying(-10)[0], now)
    assert due == now + timedelta(seconds=10 + GRACE)


def test_while_workers_keep_taking_jobs_a_backlog_stays_theirs_past_the_grace(
    tmp_path: Path,
) -> None:
    """The grace counts from the pool's last take: a backlog older than the grace is not
    spilled into runner Jobs while the workers take jobs; once they take none for the
    grace, what still waits gets runner Jobs."""
    op = operated(tmp_path, claim_grace_seconds=1)
    try:
        names = [op.submit(data=f"backlog {i}".encode()) for i in range(4)]
        created_claimed = op.prepare(data=b"a sync request")
        for name in names:
            op.start(name)
        for taken in names[:2]:
            time.sleep(0.7)  # the backlog outgrows the grace, one take at a time
            claim = Claim("workers-0/1", utcnow(), 30).annotations()
            op.kube.merge_patch(documentjobs_path(NS, taken), {"metadata": {"annotations": claim}})
            op.deliver()
            for waiting in names[2:]:
                op.start(waiting)
        assert op.runner_jobs() == []
        assert op.controller.queue.last_take("cpu") is not None
        assert [phase(op, n) for n in names[2:]] == ["Pending", "Pending"]

        # A job created under a claim (an API pod's sync request) is no take.
        taken_at = op.controller.queue.last_take("cpu")
        created_claimed["metadata"].setdefault("annotations", {}).update(
            Claim("api-0/1", utcnow(), 30).annotations()
        )
        op.kube.create(documentjobs_path(NS), created_claimed)
        op.deliver()
        assert op.controller.queue.last_take("cpu") == taken_at

        time.sleep(1.2)  # no take for the grace: the workers are gone or stuck
        for waiting in names[2:]:
            op.start(waiting)
        assert op.runner_jobs() == sorted(f"{n}-a1" for n in names[2:])
    finally:
        op.controller.stop()


# --- claiming ------------------------------------------------------------------------------


def test_free_workers_take_jobs_in_fair_share_order_within_the_cap(
    op: Operated, tmp_path: Path
) -> None:
    """A tenant's burst does not take every free worker from another tenant's single job, a
    tenant at its cap gets none however many workers are free, and sharded and docTR jobs
    are never candidates."""
    workers = workers_on(op, tmp_path, concurrency=3, cap=1)
    burst = [op.prepare() for _ in range(5)]
    single = op.prepare(tenant="other")
    never = [op.prepare(ADVANCED, page_count=1), op.prepare({"kind": "ocr.simple"}, page_count=80)]
    running = op.prepare(tenant="capped")
    running["status"] = {"phase": "Processing", "attempts": 1}
    capped = op.prepare(tenant="capped")
    for version, resource in enumerate([*burst, single, *never, running, capped], start=1):
        resource["metadata"]["resourceVersion"] = str(version)
        resource["metadata"]["creationTimestamp"] = iso(utcnow())
        workers.jobs.observe(resource)

    chosen = [w.job.spec.tenant for w in workers.choose(utcnow())]

    assert chosen == [TENANT, "other"]
    candidates = {w.job.spec.job_id for w in workers.waiting()}
    assert not candidates & {job_of(r).spec.job_id for r in never}
    assert job_of(burst[1]).spec.job_id in candidates


def test_a_gpu_worker_pod_claims_docTR_jobs_and_the_operator_leaves_them_to_it(
    tmp_path: Path,
) -> None:
    """Worker pods of the GPU image (``DOCJOBS_WORKERS__ENGINES=["doctr"]``) take docTR jobs
    and only those; an operator told that some pod claims docTR leaves them the grace."""
    op = operated(tmp_path, claim_grace_seconds=GRACE, claimed_engines=["convert", "doctr"])
    try:
        gpu = workers_on(op, tmp_path, engines=["doctr"])
        cpu = workers_on(op, tmp_path)
        scans = [op.submit(ADVANCED, page_count=1, data=f"scan {i}".encode()) for i in range(2)]
        text = op.submit()
        ocr = op.submit({"kind": "ocr.simple"}, page_count=1)
        for name in [*scans, text, ocr]:
            op.start(name)
            resource = op.resource(name)
            gpu.jobs.observe(resource)
            cpu.jobs.observe(resource)

        # Left to the workers: the scans and the text; Tesseract (the operator was told no
        # pod claims it) runs as a runner Job at once.
        assert op.runner_jobs() == [f"{ocr}-a1"]
        assert {w.job.spec.job_id for w in gpu.waiting()} == {op.job_id(n) for n in scans}
        assert {w.job.spec.job_id for w in cpu.waiting()} == {op.job_id(text)}
    finally:
        op.controller.stop()


def test_a_burst_is_claimed_and_completed_by_the_workers_without_a_runner_job(
    op: Operated, tmp_path: Path
) -> None:
    names = [op.submit(data=f"document {i}".encode()) for i in range(6)]
    for name in names:
        op.start(name)  # the operator's create handler: left to the workers
    assert op.runner_jobs() == []
    workers = workers_on(op, tmp_path, concurrency=2)
    running: list[int] = []
    """How many jobs ran on workers at once, sampled while the burst ran."""

    def all_done() -> bool:
        running.append(sum(workers.held.on_worker(n) for n in names))
        return all(phase(op, n) == "Complete" for n in names)

    async def scenario() -> None:
        await workers.start()
        try:
            await until(all_done, what="all done")
        finally:
            await workers.stop()

    asyncio.run(scenario())
    op.deliver()

    assert op.runner_jobs() == []
    assert max(running) == 2  # both workers busy, never a third process for a job claimed ahead
    for name in names:
        status = op.status(name)
        assert status["phase"] == "Complete" and status["attempts"] == 1, status
        assert op.store.exists(status["result"]["key"])
        assert status["webhooks"]["state"] == "Pending"  # the operator delivers the end
        assert outcomes(tmp_path, op, name) == ["1.json"]


def test_a_retry_is_claimed_again_once_its_backoff_has_passed(op: Operated, tmp_path: Path) -> None:
    name = op.submit()
    path = documentjobs_path(NS, name)

    def retrying(backoff_ends: datetime) -> None:
        status = {"phase": "Retrying", "attempts": 1, "nextAttemptAt": iso(backoff_ends)}
        op.kube.merge_patch(f"{path}/status", {"status": status})

    retrying(utcnow() + timedelta(minutes=5))
    workers = workers_on(op, tmp_path)

    async def scenario() -> str:
        await workers.start()
        try:
            await asyncio.sleep(1.5)  # the claim loop turns, and leaves the job alone
            during_backoff = phase(op, name)
            assert not [c for c in op.kube.writes(path) if "claim" in str(c.body)]
            await asyncio.to_thread(retrying, utcnow())
            await until(lambda: phase(op, name) == "Complete", what="the second attempt")
            return during_backoff
        finally:
            await workers.stop()

    assert asyncio.run(scenario()) == "Retrying"
    assert op.status(name)["attempts"] == 2
    assert outcomes(tmp_path, op, name) == ["2.json"]
    assert op.runner_jobs() == []


def test_two_workers_racing_for_a_job_one_claim_wins(op: Operated, tmp_path: Path) -> None:
    name = op.submit()
    first = workers_on(op, tmp_path, holder="workers-a/1")
    second = workers_on(op, tmp_path, holder="workers-b/1")

    async def scenario() -> list[bool]:
        for pod in (first, second):
            await pod.watch()
        # Both read the same resourceVersion before either writes.
        picks = [pod.choose(utcnow()) for pod in (first, second)]
        assert [len(p) for p in picks] == [1, 1]
        won = [await pod.take(p[0]) for pod, p in zip((first, second), picks, strict=True)]
        await until(lambda: phase(op, name) == "Complete", what="the winner's end")
        for pod in (first, second):
            await pod.stop()
        return won

    won = asyncio.run(scenario())

    assert won == [True, False]
    claims = [c for c in op.kube.writes(documentjobs_path(NS, name)) if "claim" in str(c.body)]
    assert len(claims) >= 2  # the loser's claim was sent, and refused (409)
    assert op.status(name)["attempts"] == 1
    assert op.runner_jobs() == []


def test_a_job_cancelled_while_a_worker_runs_it_ends_cancelled(
    op: Operated, tmp_path: Path
) -> None:
    lines = "\n".join(f"line {i} of a long document to lay out" for i in range(40_000))
    name = op.submit(data=lines.encode())
    workers = workers_on(op, tmp_path)

    async def scenario() -> float:
        await workers.start()
        try:
            await until(lambda: workers.held.on_worker(name), what="the claimed run")
            await asyncio.sleep(0.5)
            cancelled = time.monotonic()
            await asyncio.to_thread(op.cancel, name)  # the API's patch
            await asyncio.to_thread(op.start, name)  # the operator's cancel handler
            await until(lambda: len(workers.held) == 0, what="the worker stopped")
            return time.monotonic() - cancelled
        finally:
            await workers.stop()

    stopped_after = asyncio.run(scenario())

    status = op.status(name)
    assert status["phase"] == "Cancelled", status
    assert "result" not in status
    assert stopped_after < 5, "the worker was killed, not left to finish"
    assert outcomes(tmp_path, op, name) == []
    assert op.runner_jobs() == []


def test_a_worker_gone_mid_run_leaves_a_claim_that_lapses_and_its_outcome_wins(
    op: Operated, tmp_path: Path
) -> None:
    """The worker stored its outcome, then its pod lost the API server for good (no status
    write, no renewal, no release): once the claim lapses the operator ends the job from that
    outcome, with no second run."""
    name = op.submit()
    op.start(name)
    path = documentjobs_path(NS, name)

    def cut_off() -> None:  # after the Processing write: nothing more gets through
        op.kube.fail("PATCH", f"{path}/status", times=1000)
        op.kube.fail("PATCH", path, times=1000)

    op.kube.before("PATCH", f"{path}/status", cut_off)
    workers = workers_on(op, tmp_path, claim_seconds=1)

    async def scenario() -> None:
        await workers.start()
        try:
            await until(lambda: outcomes(tmp_path, op, name), what="the stored outcome")
            await until(lambda: len(workers.held) == 0, what="the run given up")
        finally:
            await workers.stop()

    asyncio.run(scenario())
    assert phase(op, name) == "Processing"
    resource = op.resource(name)
    claim = claim_of(resource)
    assert claim is not None and claim.holder == "workers-0/1"
    time.sleep(max((claim.expires_at - utcnow()).total_seconds(), 0) + 0.1)

    op.deliver()
    op.start(name)

    status = op.status(name)
    assert status["phase"] == "Complete" and status["attempts"] == 1, status
    assert op.runner_jobs() == []
    assert outcomes(tmp_path, op, name) == ["1.json"]


def test_a_job_the_operator_started_first_is_not_claimed(tmp_path: Path) -> None:
    """Past its grace the operator and a worker may go for the same job: the worker's claim
    is conditional on the version it read, so the runner Job the operator started stays the
    only run."""
    op = operated(tmp_path)  # no grace
    workers = workers_on(op, tmp_path)
    try:
        name = op.submit()

        async def scenario() -> bool:
            await workers.watch()
            (picked,) = workers.choose(utcnow())
            await asyncio.to_thread(op.start, name)  # the operator writes first
            taken = await workers.take(picked)
            await workers.stop()
            return taken

        assert asyncio.run(scenario()) is False
        assert op.runner_jobs() == [f"{name}-a1"]
        assert claim_of(op.resource(name)) is None
        assert op.status(name)["attempts"] == 1
    finally:
        op.controller.stop()


def test_a_stopping_pod_lets_its_jobs_finish_within_the_drain(op: Operated, tmp_path: Path) -> None:
    """SIGTERM (a rollout): nothing more is claimed; the job running and the one claimed
    ahead for the same worker still complete here rather than being handed back to run
    again as runner Jobs."""
    names = [op.submit(data=f"document {i}".encode()) for i in range(3)]
    workers = workers_on(op, tmp_path)  # one worker: one job running, one claimed ahead
    before = op.kube.calls[:]

    async def scenario() -> None:
        await workers.start()
        await until(lambda: any(workers.held.on_worker(n) for n in names), what="a run")
        await workers.stop(drain_seconds=60)

    asyncio.run(scenario())

    phases = sorted(phase(op, n) for n in names)
    assert phases == ["Complete", "Complete", "Pending"], phases
    assert len([c for c in op.kube.calls if c not in before and "claim" in str(c.body)]) == 2


def test_the_probes_follow_the_pod_from_start_to_stop(op: Operated, tmp_path: Path) -> None:
    """Live while it warms up (no restart loop on a slow start), ready only once its cache
    is in sync, and no longer ready once it stops claiming."""
    workers = workers_on(op, tmp_path)
    probes = serve_probes(free_port(), workers.healthy, workers.ready)
    assert probes is not None
    base = f"http://127.0.0.1:{probes.server_address[1]}"

    def answers() -> tuple[int, int]:
        live = requests.get(f"{base}/healthz", timeout=5).status_code
        return live, requests.get(f"{base}/readyz", timeout=5).status_code

    async def scenario() -> list[tuple[int, int]]:
        seen = [await asyncio.to_thread(answers)]
        await workers.start()
        seen.append(await asyncio.to_thread(answers))
        await workers.stop()
        seen.append(await asyncio.to_thread(answers))
        return seen

    try:
        seen = asyncio.run(scenario())
        metrics = requests.get(f"{base}/metrics", timeout=5).text
    finally:
        probes.shutdown()

    assert seen == [(200, 503), (200, 200), (503, 503)]
    assert "docjobs_workers_claims_total" in metrics
