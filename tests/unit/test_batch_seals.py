"""A batch in Kubernetes mode whose jobs all left the cluster before the API sealed it, in
process: the operator's sweep of sealed batches completes it and sends ``batch.completed``
once, through restarts; its record then goes at its TTL with the archive's sweep. On the
fake API server (``tests.fakekube``), with a real receiver and a real endpoint store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.webhooks import SQLiteWebhookStore
from docjobs.domain.batches import Batch
from docjobs.domain.clock import utcnow
from docjobs.kube.batches import StoredBatches, batch_state, open_seals
from docjobs.kube.paths import documentjobs_path
from tests.receivers import LocalServer, serve
from tests.unit.operated import NS, TENANT, operated, wait_until
from tests.unit.test_batch_ends import BATCH, Hooked, run_to_the_end

TTL = 600


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    with serve([(200, {}, b"{}")]) as server:
        yield server


@pytest.fixture
def hooked(tmp_path: Path, receiver: LocalServer) -> Iterator[Hooked]:
    endpoints = SQLiteWebhookStore(SQLiteDatabase(tmp_path / "endpoints.db"))
    endpoints.create(TENANT, receiver.url, ["batch.completed"])
    made = Hooked(operated(tmp_path, archive_after_seconds=1, namespace=NS), endpoints)
    yield made
    made.op.controller.stop()
    made.hook.close()


def sweep_in(hooked: Hooked, seconds: float) -> None:
    """The operator's tick ``seconds`` from now: the sweeps that are due by then run."""
    hooked.op.controller.tick(utcnow() + timedelta(seconds=seconds))


def test_a_batch_sealed_after_its_jobs_were_archived_completes_once(
    hooked: Hooked, receiver: LocalServer
) -> None:
    op = hooked.op
    batches = StoredBatches(op.store, NS)
    created = utcnow()
    batch = Batch(
        batch_id=BATCH,
        tenant=TENANT,
        operation="convert/text-to-pdf",
        created_at=created,
        ttl_seconds_after_finished=TTL,
    )
    batches.create(batch)
    names = [op.submit(batch_id=BATCH) for _ in range(2)]
    for name in names:
        run_to_the_end(op, name)
    wait_until(lambda: len(batches.ended(TENANT, BATCH)) == 2, what="both ends noted")
    time.sleep(1.2)  # archive_after_seconds

    def archived() -> bool:
        op.deliver()  # the settled job events, as kopf hands them over
        op.controller.tick(utcnow())
        return not op.kube.names(documentjobs_path(NS))

    wait_until(archived, 30, "both jobs archived")

    # The API's seal (``KubeBackend.seal_batch``) finds none of the batch's jobs to mark.
    batches.seal(TENANT, BATCH, 2)
    time.sleep(0.3)
    assert receiver.received == []
    sweep_in(hooked, 61)
    (event,) = receiver.wait_for(1)
    body = event.json()
    assert body["type"] == "batch.completed" and body["data"]["batchId"] == BATCH
    assert body["data"]["counts"]["complete"] == 2 and body["data"]["total"] == 2
    wait_until(lambda: not list(open_seals(op.store, NS)), what="the delivered batch unindexed")
    state = batch_state(batches, TENANT, BATCH, list)
    assert state is not None and state.status == "completed" and state.finished == 2

    hooked.restart()
    sweep_in(hooked, 61)
    time.sleep(0.5)
    assert len(receiver.received) == 1

    # Its record goes with the archive's sweep once its TTL ended, as its jobs' do.
    op.controller.archiver.sweep(utcnow() + timedelta(seconds=TTL - 120))
    assert batches.record(TENANT, BATCH) is not None
    op.controller.archiver.sweep(utcnow() + timedelta(seconds=TTL + 120))
    assert batches.record(TENANT, BATCH) is None
    assert batch_state(batches, TENANT, BATCH, list) is None
    assert list(op.store.keys(f"{TENANT}/.batches")) == []
    assert list(batches.completed_ids(TENANT, None)) == []


def test_a_restarted_operator_delivers_a_completed_batch_whose_jobs_are_gone(
    hooked: Hooked, receiver: LocalServer
) -> None:
    """The operator completed the batch, then stopped before its end was delivered; the
    jobs were archived meanwhile. The next operator delivers it from the seals index."""
    op = hooked.op
    batches = StoredBatches(op.store, NS)
    batch = Batch(batch_id=BATCH, tenant=TENANT, operation="x", created_at=utcnow())
    batches.create(batch)
    batches.seal(TENANT, BATCH, 1)
    sealed = batches.record(TENANT, BATCH)
    assert sealed is not None
    # What a killed operator left: the batch completed, nothing delivered, no job in sight.
    batches.complete(sealed.model_copy(update={"completed_at": utcnow()}), {})
    assert list(open_seals(op.store, NS)) == [(NS, TENANT, BATCH)]

    hooked.restart()
    sweep_in(hooked, 0)
    (event,) = receiver.wait_for(1)
    assert event.json()["data"]["batchId"] == BATCH
    wait_until(lambda: not list(open_seals(op.store, NS)), what="the delivered batch unindexed")
