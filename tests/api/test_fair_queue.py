"""Tenants share the embedded queue: a burst does not starve another tenant's job, and no
tenant runs more jobs at once than its cap (tiny text-to-PDF jobs on real workers)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from docjobs.api.app import create_app

from .conftest import InProcessApi, app_settings, running

CONVERT = "/api/v1/convert/text-to-pdf?async=true"


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
