"""The end of a batch in Kubernetes mode, in process: the operator decides it from the ended
jobs it watches and sends ``batch.completed`` once, through operator restarts; on the fake
API server (``tests.fakekube``), with a real receiver and a real webhook endpoint store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from docjobs.api.app import create_app
from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.webhooks import SQLiteWebhookStore
from docjobs.backends.kubernetes.backend import KubeBackend
from docjobs.config import OperatorSettings, Settings
from docjobs.domain.batches import Batch
from docjobs.domain.clock import utcnow
from docjobs.kube.batches import StoredBatches, batch_state, open_seals
from docjobs.operator.controller import Controller
from docjobs.operator.hooks import TerminalHook
from docjobs.webhooks.policy import WebhookSettings
from tests.api.conftest import PLANS, running
from tests.receivers import LocalServer, serve
from tests.unit.operated import NS, TENANT, Operated, operated, success, wait_until
from tests.unit.test_archive import BucketStore, ReadyKube

BATCH = "bat_0123456789abcdef01234567"


class Hooked:
    """The operator's controller with its webhook hook, as ``docjobs operator`` wires them,
    the tenant's endpoints in a store of their own."""

    def __init__(self, op: Operated, endpoints: SQLiteWebhookStore) -> None:
        self.op = op
        settings = WebhookSettings(allow_private_targets=True, initial_backoff_seconds=0.1)
        self.hook = TerminalHook(op.kube, lambda namespace: endpoints, settings)
        self.restart(first=True)

    def restart(self, first: bool = False) -> None:
        """A new operator process: it lists every DocumentJob again."""
        if not first:
            self.op.controller.stop()
        op = self.op
        op.controller = Controller(
            op.kube,
            op.settings,
            op.store,
            lambda job, namespace: op.ended.append((job, namespace)),
            op.cap,
            on_seen=self.hook.seen,
            on_batch_end=self.hook.batch_ended,
        )
        op.delivered = 0
        op.deliver()


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    with serve([(200, {}, b"{}")]) as server:
        yield server


@pytest.fixture
def hooked(tmp_path: Path, receiver: LocalServer) -> Iterator[Hooked]:
    endpoints = SQLiteWebhookStore(SQLiteDatabase(tmp_path / "endpoints.db"))
    endpoints.create(TENANT, receiver.url, ["batch.completed"])
    made = Hooked(operated(tmp_path), endpoints)
    yield made
    made.op.controller.stop()
    made.hook.close()


def run_to_the_end(op: Operated, name: str) -> None:
    op.start(name)
    op.finish(f"{name}-a1", 0, success(TENANT, op.job_id(name)))
    assert op.status(name)["phase"] == "Complete"


def test_the_batch_end_is_sent_once_across_operator_restarts(
    hooked: Hooked, receiver: LocalServer
) -> None:
    op = hooked.op
    batches = StoredBatches(op.store, NS)
    batches.create(Batch(batch_id=BATCH, tenant=TENANT, operation="x", created_at=utcnow()))
    names = [op.submit(batch_id=BATCH) for _ in range(3)]
    batches.seal(TENANT, BATCH, 3)

    run_to_the_end(op, names[0])
    op.cancel(names[1])
    op.controller.reconcile(op.ref(names[1]))
    op.deliver()
    assert op.status(names[1])["phase"] == "Cancelled"
    wait_until(lambda: len(batches.ended(TENANT, BATCH)) == 2, what="two ends noted")
    hooked.restart()  # two of three ended: nothing to send yet
    time.sleep(0.3)
    assert receiver.received == []

    run_to_the_end(op, names[2])
    (event,) = receiver.wait_for(1)
    data = event.json()["data"]
    assert event.json()["type"] == "batch.completed" and data["batchId"] == BATCH
    assert data["counts"]["complete"] == 2 and data["counts"]["cancelled"] == 1
    # Delivery is at least once: an operator that stops while the receiver's answer is on
    # its way sends again. Once the answer is in the journal, no restart does.
    wait_until(lambda: not any(b == BATCH for _, _, b in open_seals(op.store, NS)), what="settled")

    hooked.restart()  # sees every ended job of the completed batch again
    hooked.restart()
    time.sleep(0.5)
    assert len(receiver.received) == 1
    state = batch_state(batches, TENANT, BATCH, list)
    assert state is not None and state.status == "completed" and state.finished == 3


def test_a_batch_sealed_after_its_jobs_ended_completes_on_the_seal(
    hooked: Hooked, receiver: LocalServer
) -> None:
    op = hooked.op
    batches = StoredBatches(op.store, NS)
    batches.create(Batch(batch_id=BATCH, tenant=TENANT, operation="x", created_at=utcnow()))
    name = op.submit(batch_id=BATCH)
    run_to_the_end(op, name)
    wait_until(lambda: batches.ended(TENANT, BATCH), what="the end noted")
    time.sleep(0.2)
    assert receiver.received == []  # not sealed yet: more jobs may come

    batches.seal(TENANT, BATCH, 1)
    # What the API does after the seal: the annotation brings the job back to the operator.
    path = f"/apis/docjobs.io/v1alpha1/namespaces/{NS}/documentjobs/{name}"
    op.kube.merge_patch(path, {"metadata": {"annotations": {"docjobs.io/batch-sealed": "1"}}})
    op.deliver()
    (event,) = receiver.wait_for(1)
    assert event.json()["data"]["total"] == 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_batch_through_the_api_on_kubernetes(tmp_path: Path, receiver: LocalServer) -> None:
    """The real app on a ``KubeBackend``: the batch's jobs carry its label and id, the API
    counts them, cancel reaches the pending ones, and the operator sends the end once."""
    kube, store = ReadyKube(), BucketStore(tmp_path / "objects")
    op = Operated(kube, store, OperatorSettings(runner_image="docjobs:test"))
    endpoints = SQLiteWebhookStore(SQLiteDatabase(tmp_path / "endpoints.db"))
    endpoints.create(TENANT, receiver.url, ["batch.completed"])
    hooked = Hooked(op, endpoints)
    settings = Settings(
        data_dir=tmp_path / "api",
        kubernetes={"namespace": NS, "sync_workers": 0, "watch_timeout_seconds": 5},
        rate_limits={"plans": PLANS},
    )
    backend = KubeBackend(settings, kube, store)  # type: ignore[arg-type]
    try:
        async with running(create_app(settings, backend)) as api:
            key = api.key(TENANT)
            files = [("files", (f"{n}.txt", f"text {n}".encode(), "text/plain")) for n in range(3)]
            answer = await api.post(
                key, "/api/v1/batches", data={"operation": "convert/text-to-pdf"}, files=files
            )
            assert answer.status_code == 202, answer.text
            batch_id = answer.json()["batch_id"]
            names = [d["job_id"].replace("_", "-") for d in answer.json()["documents"]]
            labels = op.resource(names[0])["metadata"]["labels"]
            assert labels["docjobs.io/batch"] == batch_id
            op.deliver()

            run_to_the_end(op, names[0])
            run_to_the_end(op, names[1])
            cancelled = await api.request("DELETE", key, f"/api/v1/batches/{batch_id}")
            assert cancelled.status_code == 200, cancelled.text
            op.deliver()
            op.controller.reconcile(op.ref(names[2]))
            op.deliver()

            (event,) = receiver.wait_for(1)
            assert event.json()["data"]["counts"]["cancelled"] == 1
            view = (await api.get(key, f"/api/v1/batches/{batch_id}")).json()
            assert view["status"] == "completed"
            assert view["counts"]["complete"] == 2 and view["counts"]["cancelled"] == 1
            stranger = api.key("someone-else")
            assert (await api.get(stranger, f"/api/v1/batches/{batch_id}")).status_code == 404
            await anyio.sleep(0.3)
            assert len(receiver.received) == 1
    finally:
        op.controller.stop()
        hooked.hook.close()
