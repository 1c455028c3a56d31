"""A completed batch's record goes at its jobs' TTL, in embedded mode, in process: the sweep
that expires the jobs deletes it, and it then reads as unknown (its jobs as expired)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest

from docjobs.api.app import create_app
from tests.api.conftest import InProcessApi, app_settings, running

pytestmark = pytest.mark.anyio
TTL = 2


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    settings = app_settings(
        tmp_path_factory.mktemp("batch-expiry") / "data",
        jobs={"ttl_seconds": TTL},
        runner={"concurrency": 1, "sweep_seconds": 0.2},
    )
    async with running(create_app(settings)) as api:
        yield api


async def test_a_completed_batch_is_deleted_at_its_jobs_ttl(api: InProcessApi) -> None:
    key = api.key("short-lived")
    files = [("files", (f"{n}.txt", f"short {n}".encode(), "text/plain")) for n in (1, 2)]
    answer = await api.post(
        key, "/api/v1/batches", data={"operation": "convert/text-to-pdf"}, files=files
    )
    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["batch_id"]
    job_id = answer.json()["documents"][0]["job_id"]
    path = f"/api/v1/batches/{batch_id}"
    deadline = time.monotonic() + 30
    while (batch := await api.get(key, path)).json().get("status") != "completed":
        assert batch.status_code == 200, batch.text
        assert time.monotonic() < deadline, batch.text
        await anyio.sleep(0.05)
    completed_at = time.monotonic()

    while (batch := await api.get(key, path)).status_code == 200:
        assert time.monotonic() < completed_at + TTL + 10, "the batch outlived its TTL"
        await anyio.sleep(0.1)
    assert time.monotonic() >= completed_at + TTL - 0.5, "deleted before its TTL"
    assert batch.status_code == 404 and batch.json()["error"]["code"] == "batch_not_found"
    jobs = await api.get(key, f"{path}/jobs")
    assert jobs.status_code == 404, jobs.text
    expired = await api.get(key, f"/api/v1/jobs/{job_id}")
    assert expired.status_code == 404 and expired.json()["error"]["code"] == "job_expired"
