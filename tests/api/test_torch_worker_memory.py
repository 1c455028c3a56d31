"""A warm runner worker that ran docTR holds PyTorch and its models; once it has been idle for
``DOCJOBS_RUNNER__TORCH_IDLE_SECONDS`` it is retired, giving that memory back, and the pool
serves the next job with a fresh worker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import psutil
import pytest

from docjobs.api.app import create_app
from docjobs.config import RunnerSettings
from tests.api.conftest import InProcessApi, app_settings, running
from tests.docs import pdf_with_pages
from tests.doctr_weights import doctr_env, save_stand_in_weights

pytest.importorskip("doctr", reason="the doctr extra is not installed")

pytestmark = pytest.mark.anyio

IDLE_SECONDS = 3.0


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    weights = save_stand_in_weights(tmp_path_factory.mktemp("weights"))
    runner = RunnerSettings(concurrency=1, torch_idle_seconds=IDLE_SECONDS)
    # Runner workers take their settings from the environment, as in a deployment.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in doctr_env(weights).items():
            patch.setenv(name, value)
        app = create_app(app_settings(tmp_path_factory.mktemp("app") / "data", runner=runner))
        async with running(app) as started:
            yield started


def workers() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "--worker" in child.cmdline() and "docjobs.runner" in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def holds_torch(worker: psutil.Process) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{worker.pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


async def test_the_worker_that_ran_doctr_is_retired_once_idle(api: InProcessApi) -> None:
    key = api.key("torch-memory")
    upload = {"file": ("scan.pdf", pdf_with_pages(1, seed=21)[0], "application/pdf")}
    response = await api.post(key, "/api/v1/ocr/extract/advanced", files=upload)
    assert response.status_code == 200, response.text
    heavy = [w for w in workers() if holds_torch(w)]
    assert heavy, "the worker that ran docTR holds PyTorch until it has been idle a while"

    deadline = time.monotonic() + IDLE_SECONDS + 20
    while any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in heavy):
        assert time.monotonic() < deadline, "the idle docTR worker was not retired"
        await anyio.sleep(0.2)
    assert not any(holds_torch(w) for w in workers())

    # The pool goes on with a fresh worker.
    upload = {"file": ("scan.pdf", pdf_with_pages(1, seed=22)[0], "application/pdf")}
    simple = await api.post(key, "/api/v1/ocr/extract/simple", files=upload)
    assert simple.status_code == 200, simple.text
    assert all(not holds_torch(w) for w in workers())
