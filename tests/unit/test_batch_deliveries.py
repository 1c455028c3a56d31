"""A batch's ``batch.completed`` in the delivery log and its replay, in Kubernetes mode, in
process: the real app on a ``KubeBackend`` and a real ``Controller`` with its webhook hook,
on the fake API server (``tests.fakekube``) and one local store, against a real receiver.
The operator keeps the batch's tries in its journal in the object store; the API lists that
delivery beside the jobs' and records the replay's try there."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from docjobs.api.app import create_app
from docjobs.backends.kubernetes.backend import KubeBackend
from docjobs.config import OperatorSettings, Settings
from docjobs.operator.controller import Controller
from docjobs.operator.hooks import TerminalHook
from docjobs.webhooks.policy import WebhookSettings
from tests.api.conftest import PLANS, InProcessApi, running
from tests.api.test_webhook_replay import Receiver, assert_replayed
from tests.receivers import serve
from tests.unit.operated import NS, TENANT, Operated
from tests.unit.test_archive import BucketStore, ReadyKube
from tests.unit.test_batch_ends import run_to_the_end

pytestmark = pytest.mark.anyio
WEBHOOKS = {
    "allow_private_targets": True,
    "max_attempts": 2,
    "initial_backoff_seconds": 0.1,
    "timeout_seconds": 5,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def logged(api: InProcessApi, key: str, path: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = await api.get(key, path)
        assert answer.status_code == 200, answer.text
        if deliveries := answer.json()["deliveries"]:
            return list(deliveries)
        await anyio.sleep(0.1)
    raise AssertionError(f"no delivery at {path}")


async def test_a_batch_delivery_is_logged_and_replayed_on_kubernetes(tmp_path: Path) -> None:
    kube, store = ReadyKube(), BucketStore(tmp_path / "objects")
    op = Operated(kube, store, OperatorSettings(runner_image="docjobs:test"))
    settings = Settings(
        data_dir=tmp_path / "api",
        kubernetes={"namespace": NS, "sync_workers": 0, "watch_timeout_seconds": 5},
        rate_limits={"plans": PLANS},
        webhooks=WEBHOOKS,
    )
    backend = KubeBackend(settings, kube, store)  # type: ignore[arg-type]
    # The operator's hook reads the endpoints the API registers (the same Secret).
    hook = TerminalHook(kube, lambda namespace: backend.webhooks, WebhookSettings(**WEBHOOKS))
    op.controller.stop()
    op.controller = Controller(
        kube,
        op.settings,
        store,
        lambda job, namespace: None,
        on_seen=hook.seen,
        on_batch_end=hook.batch_ended,
    )
    receiver = Receiver()
    try:
        with serve(receiver) as server:
            async with running(create_app(settings, backend)) as api:
                key, stranger = api.key(TENANT), api.key("someone-else")
                created = await api.post(
                    key, "/v1/webhooks", json={"url": server.url, "events": ["batch.completed"]}
                )
                assert created.status_code == 201, created.text
                endpoint, secret = created.json()["id"], created.json()["secret"]
                files = [
                    ("files", (f"{n}.txt", f"text {n}".encode(), "text/plain")) for n in (1, 2)
                ]
                answer = await api.post(
                    key, "/api/v1/batches", data={"operation": "convert/text-to-pdf"}, files=files
                )
                assert answer.status_code == 202, answer.text
                batch_id = answer.json()["batch_id"]
                op.deliver()
                for document in answer.json()["documents"]:
                    run_to_the_end(op, document["job_id"].replace("_", "-"))

                log_path = f"/v1/webhooks/{endpoint}/deliveries"
                (entry,) = await logged(api, key, log_path)
                assert entry["event"] == "batch.completed" and entry["batchId"] == batch_id
                assert entry["jobId"] is None
                assert entry["tries"] == 2 and entry["delivered"] is False
                assert entry["webhookId"] == server.received[0].headers["webhook-id"]
                replay_path = f"{log_path}/{entry['id']}/replay"
                assert (await api.post(stranger, replay_path)).status_code == 404

                receiver.fixed = True
                await anyio.sleep(1.05)  # the replay's timestamp is a later second
                replayed = await api.post(key, replay_path)
                assert replayed.status_code == 200, replayed.text
                assert len(server.received) == 3
                assert_replayed(server.received, secret)
                (entry,) = (await api.get(key, log_path)).json()["deliveries"]
                assert entry["tries"] == 3 and entry["delivered"] is True
    finally:
        op.controller.stop()
        hook.close()
