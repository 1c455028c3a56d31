"""Tenants share the embedded queue: a burst does not starve another tenant's job, sent
asynchronously or by callers waiting for their answers, and no tenant runs more jobs at
once than its cap (tiny text-to-PDF jobs on real workers)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from docjobs.api.app import create_app
from docjobs.domain.models import Job

from .conftest import InProcessApi, app_settings, running

CONVERT = "/api/v1/convert/text-to-pdf?async=true"
SYNC_CONVERT = "/api/v1/convert/text-to-pdf"
BURST = 50
"""Far more jobs than one worker reads while they are sent."""


async def queue_job(api: InProcessApi, key: str, text: str) -> str:
    response = await api.post(key, CONVERT, data={"content": text})
    assert response.status_code == 202
    return str(response.json()["job_id"])


async def total(api: InProcessApi, key: str, status: str) -> int:
    return int((await api.get(key, f"/api/v1/jobs?status={status}&limit=1")).json()["total"])


async def job_of(api: InProcessApi, tenant: str, job_id: str) -> Job:
    """The backend's job: its times to the microsecond (the API gives them to the second)."""
    job = await api.app.state.backend.get(tenant, job_id)
    assert job is not None
    return job


async def ends_around(
    api: InProcessApi, job: Job, tenant: str, job_ids: list[str]
) -> tuple[int, int]:
    """How many of ``job_ids`` completed while ``job`` waited to start (between its
    submission and its start), and how many after it started."""
    submitted, started = job.spec.created_at, job.status.started_at
    assert started is not None
    ends = [(await job_of(api, tenant, job_id)).status.completed_at for job_id in job_ids]
    while_waiting = [end for end in ends if end is not None and submitted < end <= started]
    after = [end for end in ends if end is None or end > started]
    return len(while_waiting), len(after)


@pytest.mark.anyio
async def test_a_job_burst_delays_another_tenants_job_by_about_one_job(
    tmp_path: Path,
) -> None:
    async with running(create_app(app_settings(tmp_path / "data"))) as api:
        bursty, single = api.key("bursty"), api.key("single")
        burst = [await queue_job(api, bursty, f"burst {n}") for n in range(BURST)]
        single_id = await queue_job(api, single, "one job")
        assert (await api.wait_for(single, single_id))["status"] == "complete"
        job = await job_of(api, "single", single_id)
        ahead, behind = await ends_around(api, job, "bursty", burst)
        # One worker: the single job waits for the burst's running job at most (and one the
        # worker took as it came), not for the rest of the burst, whatever the machine's pace.
        assert ahead <= 2, (ahead, behind)
        assert behind > BURST // 4, "the burst was not still queued when the single job came"


@pytest.mark.anyio
async def test_a_tenant_never_runs_more_jobs_at_once_than_its_cap(tmp_path: Path) -> None:
    settings = app_settings(
        tmp_path / "data", runner={"concurrency": 2}, jobs={"max_running_per_tenant": 1}
    )
    async with running(create_app(settings)) as api:
        capped, other = api.key("capped"), api.key("other")
        for n in range(8):
            await queue_job(api, capped, f"capped {n}")
        other_job = await queue_job(api, other, "other")
        most = 0
        while await total(api, capped, "complete") < 8:
            most = max(most, await total(api, capped, "processing"))
            await anyio.sleep(0.01)
        assert most == 1
        assert (await api.wait_for(other, other_job))["status"] == "complete"


async def sync_flood(api: InProcessApi, key: str, callers: int, calls: int) -> list[str]:
    """``callers`` concurrent callers, each sending ``calls`` sync conversions one after the
    other; the jobs that answered them, as the answers came."""
    answered: list[str] = []

    async def caller(number: int) -> None:
        for n in range(calls):
            response = await api.post(key, SYNC_CONVERT, data={"content": f"sync {number} {n}"})
            assert response.status_code == 200
            answered.append(response.headers["X-Job-Id"])

    async with anyio.create_task_group() as group:
        for number in range(callers):
            group.start_soon(caller, number)
    return answered


@pytest.mark.anyio
async def test_sync_callers_of_one_tenant_do_not_hold_back_another_tenants_job(
    tmp_path: Path,
) -> None:
    async with running(create_app(app_settings(tmp_path / "data"))) as api:
        flooding, single = api.key("sync-flood"), api.key("single-async")
        callers, calls = 4, 5
        async with anyio.create_task_group() as group:
            answered: list[str] = []

            async def flood() -> None:
                answered.extend(await sync_flood(api, flooding, callers, calls))

            group.start_soon(flood)
            # Under way: every caller has a request waiting on the one worker.
            while await total(api, flooding, "pending") < callers - 1:
                await anyio.sleep(0.01)
            single_id = await queue_job(api, single, "one async job")
            assert (await api.wait_for(single, single_id))["status"] == "complete"
        assert len(answered) == callers * calls
        job = await job_of(api, "single-async", single_id)
        ahead, behind = await ends_around(api, job, "sync-flood", answered)
        # It started as soon as the worker was free, ahead of the callers' waiting requests,
        # with the flood (every request of it with a caller waiting) far from through.
        assert ahead <= 2, (ahead, behind)
        assert behind >= callers * calls // 2, (ahead, behind)


@pytest.mark.anyio
async def test_a_tenants_sync_requests_count_against_its_cap(tmp_path: Path) -> None:
    settings = app_settings(
        tmp_path / "data", runner={"concurrency": 2}, jobs={"max_running_per_tenant": 1}
    )
    async with running(create_app(settings)) as api:
        capped, other = api.key("sync-capped"), api.key("other")
        most = 0
        async with anyio.create_task_group() as group:
            group.start_soon(sync_flood, api, capped, 4, 3)
            while await total(api, capped, "pending") + await total(api, capped, "complete") < 4:
                await anyio.sleep(0.01)
            other_job = await queue_job(api, other, "other")
            while await total(api, capped, "complete") < 12:
                most = max(most, await total(api, capped, "processing"))
                await anyio.sleep(0.01)
        assert most == 1
        assert (await api.wait_for(other, other_job))["status"] == "complete"
