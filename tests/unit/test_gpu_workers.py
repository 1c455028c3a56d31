"""Worker pods of the GPU image (``DOCJOBS_WORKERS__ENGINES=["doctr"]``): the docTR jobs they
claim are read in batches by their warm worker, pages of several documents in one forward
pass, while each DocumentJob keeps its own status, attempt and outcome.

A real warm runner worker with docTR's random stand-in weights (``tests.doctr_weights``),
on the fake API server of the in-process operator (``tests.unit.operated``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.docs import pdf_of_images, sentence_lines, text_image
from tests.doctr_weights import doctr_env, save_stand_in_weights
from tests.unit.operated import TENANT, operated
from tests.unit.test_claiming_workers import ADVANCED, GRACE, phase, until, workers_on

pytest.importorskip("doctr", reason="the doctr extra is not installed")


def scan(seed: int) -> bytes:
    return pdf_of_images([text_image(sentence_lines(seed, 3), width=900 + 100 * seed)])


def test_claimed_docTR_jobs_share_a_batch_and_a_cancel_stops_only_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in doctr_env(save_stand_in_weights(tmp_path / "weights")).items():
        monkeypatch.setenv(name, value)
    # Long enough for the three claims to gather into one batch.
    monkeypatch.setenv("DOCJOBS_DOCTR__BATCH_LINGER_MS", "1500")
    op = operated(tmp_path, claim_grace_seconds=GRACE, claimed_engines=["doctr"])
    names = [op.submit(ADVANCED, page_count=1, data=scan(seed)) for seed in range(3)]
    for name in names:
        op.start(name)  # left to the worker pods
    workers = workers_on(op, tmp_path, engines=["doctr"])
    assert workers.slots >= 3
    kept, cancelled = names[:2], names[2]

    async def scenario() -> None:
        await workers.start()
        try:
            await until(
                lambda: all(phase(op, n) == "Processing" for n in names), what="all three claimed"
            )
            await asyncio.to_thread(op.cancel, cancelled)  # the API's patch
            await asyncio.to_thread(op.start, cancelled)  # the operator's cancel handler
            # The cancelled job no longer waits for the batch; its neighbours still run.
            await until(lambda: cancelled not in workers.held, 30, "the cancelled job let go")
            assert all(n in workers.held for n in kept), "the batch ended with the cancel"
            await until(
                lambda: all(phase(op, n) == "Complete" for n in kept), 300, "the batch's end"
            )
        finally:
            await workers.stop()

    asyncio.run(scenario())
    op.deliver()

    assert op.runner_jobs() == []
    assert phase(op, cancelled) == "Cancelled"
    for name in kept:
        status = op.status(name)
        assert status["attempts"] == 1, status
        stored = b"".join(op.store.iter_chunks(status["result"]["key"]))
        assert json.loads(stored)["data"]["pages"][0]["page"] == 1
        outcome_path = tmp_path / "objects" / TENANT / op.job_id(name) / "attempts" / "1.json"
        details = json.loads(outcome_path.read_text())["summary"]["details"]
        # One forward pass read the pages of all three documents.
        assert details["batch_documents"] == 3, details
        assert details["forward_passes"] == 1, details
