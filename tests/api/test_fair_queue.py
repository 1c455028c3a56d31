"""Tenants share the embedded queue: a burst does not starve another tenant's job, sent
asynchronously or by callers waiting for their answers, and no tenant runs more jobs at
once than its cap (tiny text-to-PDF jobs on real workers)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from docjobs.api.app import create_app

from .conftest import InProcessApi, app_settings, running

CONVERT = "/api/v1/convert/text-to-pdf?async=true"
SYNC_CONVERT = "/api/v1/convert/text-to-pdf"


async def queue_job(api: InProcessApi, key: str, text: str) -> str:
    response = await api.post(key, CONVERT, data={"content": text})
    assert response.status_code == 202
    return str(response.json()["job_id"])


async def latency(api: InProcessApi, key: str, text: str) -> float:
    """Seconds from submitting one job to seeing it complete."""
    started = time.monotonic()
    job_id = await queue_job(api, key, text)
    while (await api.get(key, f"/api/v1/jobs/{job_id}")).json()["status"] != "complete":
        await anyio.sleep(0.02)
    return time.monotonic() - started


async def total(api: InProcessApi, key: str, status: str) -> int:
    return int((await api.get(key, f"/api/v1/jobs?status={status}&limit=1")).json()["total"])


@pytest.mark.anyio
async def test_a_200_job_burst_delays_another_tenants_job_by_about_one_job(
    tmp_path: Path,
) -> None:
    async with running(create_app(app_settings(tmp_path / "data"))) as api:
        quiet, bursty, single = api.key("quiet"), api.key("bursty"), api.key("single")
        alone = min([await latency(api, quiet, f"warm-up {n}") for n in range(3)])
        for n in range(200):
            await queue_job(api, bursty, f"burst {n}")
        behind_burst = await latency(api, single, "one job")
        done = await total(api, bursty, "complete")
        # One worker: the single job waits for the burst's running job at most, not for
        # the burst (which takes 200 job lengths).
        assert behind_burst <= 2 * alone + 1.0, (behind_burst, alone)
        assert done < 150, done


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


async def sync_flood(api: InProcessApi, key: str, callers: int, calls: int) -> list[int]:
    """``callers`` concurrent callers, each sending ``calls`` sync conversions one after the
    other; the list counts the answers as they come."""
    answered: list[int] = []

    async def caller(number: int) -> None:
        for n in range(calls):
            response = await api.post(key, SYNC_CONVERT, data={"content": f"sync {number} {n}"})
            assert response.status_code == 200
            answered.append(number)

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
        callers, calls = 4, 10
        async with anyio.create_task_group() as group:
            answered: list[int] = []

            async def flood() -> None:
                answered.extend(await sync_flood(api, flooding, callers, calls))

            group.start_soon(flood)
            # Under way: every caller has a request waiting on the one worker.
            while await total(api, flooding, "pending") < callers - 1:
                await anyio.sleep(0.01)
            job_id = await queue_job(api, single, "one async job")
            job = await api.wait_for(single, job_id)
            flood_done = await total(api, flooding, "complete")
        assert job["status"] == "complete"
        # It started as soon as the worker was free: the flood (40 sync requests, every
        # one of them with a caller waiting) was far from through.
        assert flood_done < callers * calls // 2, flood_done
        assert len(answered) == callers * calls


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
