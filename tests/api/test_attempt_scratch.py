"""No tenant's document outlives its attempt on local disk: an attempt cancelled, killed at
its deadline or lost with its worker leaves no scratch file behind, and what a killed
service left is swept at the next start (a long OCR job on a real worker, Tesseract)."""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path

import anyio
import pytest

from docjobs.api.app import create_app
from tests.docs import pdf_with_pages

from .conftest import InProcessApi, app_settings, running

OCR = "/api/v1/ocr/extract/simple?async=true"
ONE_ATTEMPT = {"retry": {"max_attempts": 1}}


@functools.cache
def long_scan() -> bytes:
    """A 30-page scan: Tesseract reads it for far longer than these tests let it run."""
    return pdf_with_pages(30, seed=5)[0]


def attempt_files(data_dir: Path) -> list[Path]:
    """Every file under the workers' scratch root (os.walk: directories may go meanwhile)."""
    root = data_dir / "tmp" / "attempts"
    return [Path(top, name) for top, _, names in os.walk(root) for name in names]


async def start_long_job(api: InProcessApi, key: str, data_dir: Path) -> str:
    """A long OCR job, once its attempt works on the input in its scratch directory."""
    response = await api.post(
        key, OCR, files={"file": ("long.pdf", long_scan(), "application/pdf")}
    )
    assert response.status_code == 202
    job_id = str(response.json()["job_id"])
    deadline = time.monotonic() + 60
    while not any(path.name == "input" for path in attempt_files(data_dir)):
        assert time.monotonic() < deadline, "the attempt's input never reached its scratch"
        await anyio.sleep(0.01)
    return job_id


async def no_attempt_files(data_dir: Path) -> list[Path]:
    """The scratch files left a few seconds after the attempt ended (none, when removed)."""
    deadline = time.monotonic() + 10
    while (left := attempt_files(data_dir)) and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    return left


@pytest.mark.anyio
async def test_a_cancelled_attempt_leaves_no_scratch(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with running(create_app(app_settings(data_dir))) as api:
        key = api.key("scratch-cancel")
        job_id = await start_long_job(api, key, data_dir)
        assert (await api.request("DELETE", key, f"/api/v1/jobs/{job_id}")).status_code == 204
        assert (await api.wait_for(key, job_id))["status"] == "cancelled"
        assert await no_attempt_files(data_dir) == []
        # The worker that replaces the killed one works as before.
        after = await api.post(key, "/api/v1/convert/text-to-pdf", data={"content": "after"})
        assert after.status_code == 200 and after.content.startswith(b"%PDF")
        assert attempt_files(data_dir) == []


@pytest.mark.anyio
async def test_an_attempt_killed_at_its_deadline_leaves_no_scratch(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = app_settings(data_dir, jobs={"timeout_seconds": 3, **ONE_ATTEMPT})
    async with running(create_app(settings)) as api:
        key = api.key("scratch-deadline")
        job_id = await start_long_job(api, key, data_dir)
        job = await api.wait_for(key, job_id)
        assert job["status"] == "failed"
        assert await no_attempt_files(data_dir) == []


@pytest.mark.anyio
async def test_an_attempt_whose_worker_crashed_leaves_no_scratch(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with running(create_app(app_settings(data_dir, jobs=ONE_ATTEMPT))) as api:
        key = api.key("scratch-crash")
        job_id = await start_long_job(api, key, data_dir)
        worker = api.app.state.backend.supervisor.runner_pids[job_id]
        os.killpg(worker, signal.SIGKILL)
        job = await api.wait_for(key, job_id)
        assert job["status"] == "failed"
        assert await no_attempt_files(data_dir) == []


@pytest.mark.anyio
async def test_scratch_a_killed_service_left_is_swept_at_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # What a service killed mid-attempt leaves: its worker's directory with an attempt in it.
    attempt = data_dir / "tmp" / "attempts" / "4242-dead" / "docjobs-attempt-x"
    attempt.mkdir(parents=True)
    (attempt / "input").write_bytes(b"%PDF- a tenant's document")
    (attempt / "page-1.txt").write_text("the tenant's OCR text")
    async with running(create_app(app_settings(data_dir))) as api:
        assert attempt_files(data_dir) == []
        assert not (data_dir / "tmp" / "attempts" / "4242-dead").exists()
        key = api.key("scratch-swept")
        done = await api.post(key, "/api/v1/convert/text-to-pdf", data={"content": "fresh"})
        assert done.status_code == 200
