"""docTR documents read together by one real warm runner worker: their pages share forward
passes, yet each document ends on its own, with its own result, outcome and deadline.

The worker is a real ``docjobs runner --worker`` process driven by the pool, on a local
object store; the weights are random stand-ins (``tests.doctr_weights``), so the results are
compared by structure (pages, sizes, fields), not by text.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from docjobs.backends.workers.batcher import DocumentBatcher
from docjobs.backends.workers.pool import WorkerPool, run_attempt, run_batch
from docjobs.domain.lifecycle import Observation, RunnerExited
from docjobs.domain.models import (
    EXIT_OK,
    EXIT_PERMANENT,
    EXIT_TRANSIENT,
    InputRef,
    JobSpec,
    OcrAdvanced,
    OcrSimple,
    PagePart,
    RunOutcome,
    WorkerBatch,
    WorkerRequest,
)
from docjobs.storage.base import outcome_key
from docjobs.storage.local import LocalStore
from tests.docs import pdf_of_images, sentence_lines, text_image
from tests.doctr_weights import doctr_env, save_stand_in_weights

pytest.importorskip("doctr", reason="the doctr extra is not installed")

pytestmark = pytest.mark.anyio

WIDTHS = (900, 1100, 1300, 1500)
"""One page each, of a width of its own: a page routed to the wrong document shows."""


class Rig:
    def __init__(self, store: LocalStore, pool: WorkerPool) -> None:
        self.store = store
        self.pool = pool
        self.made = 0

    def request(
        self, body: bytes, output: str = "detailed", timeout: float = 600.0, **kind: Any
    ) -> WorkerRequest:
        self.made += 1
        job_id = f"job_{self.made:024x}"
        key = f"acme/{job_id}/input"
        self.store.put_bytes(key, body, "application/pdf")
        operation = (kind.get("operation") or OcrAdvanced)(output=output)
        spec = JobSpec(
            job_id=job_id,
            tenant="acme",
            operation=operation,
            input=InputRef(
                key=key,
                file_name="scan.pdf",
                content_type="application/pdf",
                sha256="0",
                size=len(body),
            ),
            timeout_seconds=timeout,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        return WorkerRequest(spec=spec, attempt=1)

    def result(self, observation: Observation) -> dict[str, Any]:
        assert isinstance(observation, RunnerExited), observation
        assert observation.exit_code == EXIT_OK, observation.summary
        assert observation.summary.result is not None
        body = b"".join(self.store.iter_chunks(observation.summary.result.key))
        data: dict[str, Any] = json.loads(body)["data"]
        return data


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    weights = save_stand_in_weights(tmp_path_factory.mktemp("weights"))
    data = tmp_path_factory.mktemp("batches")
    env = {**os.environ, **doctr_env(weights), "DOCJOBS_DATA_DIR": str(data)}
    pool = WorkerPool(size=1, max_jobs_per_worker=1000, env=env)
    try:
        yield Rig(LocalStore(data / "objects"), pool)
    finally:
        await pool.close()


def scan(width: int, seed: int = 1) -> bytes:
    return pdf_of_images([text_image(sentence_lines(seed, 3, 4), size=40, width=width)])


def shape(page: dict[str, Any]) -> dict[str, Any]:
    """What a page view holds whatever the model reads."""
    return {"page": page["page"], "size": (page["width"], page["height"]), "keys": sorted(page)}


async def test_documents_read_together_each_get_the_result_they_get_alone(rig: Rig) -> None:
    scans = [scan(width, seed) for seed, width in enumerate(WIDTHS)]
    requests = [rig.request(body) for body in scans]
    worker = await rig.pool.acquire()
    together = await run_batch(rig.pool, worker, requests, timeout=300)

    assert len(together) == len(requests)
    for request, observation in zip(requests, together, strict=True):
        assert isinstance(observation, RunnerExited)
        # One forward pass held the pages of all four documents (page batches of 4).
        assert observation.summary.details["batch_documents"] == len(requests)
        assert observation.summary.details["forward_passes"] == 1
        spec = request.spec
        assert rig.store.exists(outcome_key(spec.tenant, spec.job_id, request.attempt))
    read_together = [rig.result(observation) for observation in together]

    read_alone = []
    for body in scans:
        worker = await rig.pool.acquire()
        alone = await run_attempt(rig.pool, worker, rig.request(body), timeout=300)
        assert isinstance(alone, RunnerExited)
        assert "batch_documents" not in alone.summary.details
        read_alone.append(rig.result(alone))
    for mine, its_own in zip(read_together, read_alone, strict=True):
        assert mine["page_count"] == its_own["page_count"] == 1
        assert [shape(page) for page in mine["pages"]] == [shape(page) for page in its_own["pages"]]
        assert mine.keys() == its_own.keys()
    widths = [data["pages"][0]["width"] for data in read_together]
    assert widths == sorted(widths) and len(set(widths)) == len(WIDTHS)


async def test_a_corrupt_or_late_document_ends_alone_and_its_neighbours_complete(
    rig: Rig,
) -> None:
    first = rig.request(scan(1000, seed=7), output="simple")
    corrupt = rig.request(b"%PDF-1.7\nnot a document at all")
    late = rig.request(scan(1000, seed=8), timeout=0.001)
    last = rig.request(scan(1200, seed=9))
    worker = await rig.pool.acquire()
    first_end, corrupt_end, late_end, last_end = await run_batch(
        rig.pool, worker, [first, corrupt, late, last], timeout=300
    )

    assert isinstance(corrupt_end, RunnerExited) and corrupt_end.exit_code == EXIT_PERMANENT
    assert corrupt_end.summary.error is not None
    assert corrupt_end.summary.error.message  # the reason a user reads
    assert isinstance(late_end, RunnerExited) and late_end.exit_code == EXIT_TRANSIENT
    assert late_end.summary.error is not None
    assert late_end.summary.error.reason == "DeadlineExceeded"
    assert rig.result(first_end)["pages"][0].keys() == {"page", "text", "word_count", "confidence"}
    assert rig.result(last_end)["pages"][0]["width"] > 0
    for request in (corrupt, late):
        stored = b"".join(rig.store.iter_chunks(outcome_key("acme", request.spec.job_id, 1)))
        assert RunOutcome.model_validate_json(stored).summary.error is not None


async def test_only_whole_doctr_documents_are_batched(rig: Rig) -> None:
    tesseract = rig.request(scan(900), operation=OcrSimple)
    with pytest.raises(ValueError, match="only docTR attempts"):
        WorkerBatch(requests=[rig.request(scan(900)), tesseract])
    part = rig.request(scan(900)).model_copy(update={"part": PagePart(index=0, pages="1")})
    with pytest.raises(ValueError, match="only whole documents"):
        WorkerBatch(requests=[part])
    batcher = DocumentBatcher(rig.pool, max_documents=8, linger=0.02)
    with pytest.raises(ValueError, match="only docTR attempts"):
        await batcher.run(tesseract, timeout=60)
    await batcher.close()


async def test_the_batcher_gathers_concurrent_documents_into_one_batch(rig: Rig) -> None:
    batcher = DocumentBatcher(rig.pool, max_documents=3, linger=60.0)
    requests = [rig.request(scan(900 + 100 * n, seed=20 + n)) for n in range(3)]
    ended: list[Observation] = []

    async def one(request: WorkerRequest) -> None:
        ended.append(await batcher.run(request, timeout=300))

    started = time.monotonic()
    async with anyio.create_task_group() as tasks:
        for request in requests:
            tasks.start_soon(one, request)
    # A full batch goes at once, however long the linger.
    assert time.monotonic() - started < 60
    await batcher.close()
    assert len(ended) == 3
    for observation in ended:
        assert isinstance(observation, RunnerExited) and observation.exit_code == EXIT_OK
        assert observation.summary.details["batch_documents"] == 3


async def test_a_lone_document_waits_no_longer_than_the_linger(rig: Rig) -> None:
    worker = await rig.pool.acquire()
    started = time.monotonic()
    await run_attempt(rig.pool, worker, rig.request(scan(900, seed=30)), timeout=300)
    direct = time.monotonic() - started

    linger = 1.0
    batcher = DocumentBatcher(rig.pool, max_documents=8, linger=linger)
    started = time.monotonic()
    observation = await batcher.run(rig.request(scan(900, seed=31)), timeout=300)
    waited = time.monotonic() - started
    await batcher.close()

    assert isinstance(observation, RunnerExited) and observation.exit_code == EXIT_OK
    assert observation.summary.details["batch_documents"] == 1
    assert linger <= waited < linger + 3 * direct + 2.0
