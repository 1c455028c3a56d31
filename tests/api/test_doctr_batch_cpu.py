"""docTR documents read together by one real warm runner worker share the batch's CPU time
by their pages: each reports its share, the longer document the larger, and the shares add
up to what the worker used, not to more."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from docjobs.backends.workers.pool import WorkerPool, run_batch
from docjobs.domain.lifecycle import RunnerExited
from docjobs.domain.models import EXIT_OK, InputRef, JobSpec, OcrAdvanced, WorkerRequest
from docjobs.storage.local import LocalStore
from tests.docs import pdf_of_images, sentence_lines, text_image
from tests.doctr_weights import doctr_env, save_stand_in_weights

pytest.importorskip("doctr", reason="the doctr extra is not installed")

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[tuple[WorkerPool, LocalStore]]:
    weights = save_stand_in_weights(tmp_path / "weights")
    data = tmp_path / "data"
    env = {**os.environ, **doctr_env(weights), "DOCJOBS_DATA_DIR": str(data)}
    made = WorkerPool(size=1, max_jobs_per_worker=1000, env=env)
    try:
        yield made, LocalStore(data / "objects")
    finally:
        await made.close()


def _request(store: LocalStore, number: int, pages: int) -> WorkerRequest:
    lines = (sentence_lines(number + n, 2, 3) for n in range(pages))
    images = [text_image(text, size=24, width=480) for text in lines]
    body = pdf_of_images(images)
    job_id = f"job_{number:024x}"
    key = f"acme/{job_id}/input"
    store.put_bytes(key, body, "application/pdf")
    scan = InputRef(
        key=key, file_name="scan.pdf", content_type="application/pdf", sha256="0", size=len(body)
    )
    spec = JobSpec(
        job_id=job_id,
        tenant="acme",
        operation=OcrAdvanced(output="simple"),
        input=scan,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return WorkerRequest(spec=spec, attempt=1)


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


async def test_a_batch_shares_its_cpu_time_by_pages(
    pool: tuple[WorkerPool, LocalStore],
) -> None:
    workers, store = pool
    short, long = _request(store, 1, pages=1), _request(store, 2, pages=2)
    worker = await workers.acquire()
    before = _cpu(worker.pid)
    ended = await run_batch(workers, worker, [short, long], timeout=300)
    used = _cpu(worker.pid) - before

    for observation in ended:
        assert isinstance(observation, RunnerExited) and observation.exit_code == EXIT_OK
        assert observation.summary.details["batch_documents"] == 2
    short_cpu, long_cpu = (observation.summary.cpu_seconds for observation in ended)
    assert 0 < short_cpu < long_cpu
    # Shared out, not each charged the whole batch; what is left out is the worker's own
    # reading of the batch and writing of the outcomes.
    assert 0.5 * used <= short_cpu + long_cpu <= used + 0.01
