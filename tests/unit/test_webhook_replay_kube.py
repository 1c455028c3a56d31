"""Webhook replays in Kubernetes mode, in process: the real app on a real ``KubeBackend`` over
the fake API server and a local object store, a real local receiver.

Deliveries live on the DocumentJob (``status.webhooks``, written by the operator) and, once
it is archived, in its record in the object store. A replay sends what the operator sent
(same ``webhook-id``, same body) signed afresh, and its try lands where the delivery lives:
the DocumentJob's status while it is in the cluster, its archived record afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from standardwebhooks.webhooks import Webhook

from docjobs.api.app import create_app
from docjobs.backends.kubernetes.backend import KubeBackend
from docjobs.config import OperatorSettings, Settings
from docjobs.domain.clock import utcnow
from docjobs.domain.events import job_view
from docjobs.kube.archive import Archive
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import job_of, resource_name
from docjobs.webhooks.fanout import Target, message_to
from docjobs.webhooks.messages import SignedMessage, message_id
from tests.api.conftest import PLANS, InProcessApi, running
from tests.receivers import LocalServer, serve
from tests.unit.operated import NS, TENANT, Operated, documentjob, success
from tests.unit.test_archive import BucketStore, ReadyKube

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Cluster:
    op: Operated
    api: InProcessApi
    key: str
    receiver: LocalServer
    endpoint: str
    secret: str


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    kube, store = ReadyKube(), BucketStore(tmp_path / "objects")
    op = Operated(kube, store, OperatorSettings(runner_image="t", archive_after_seconds=1))
    settings = Settings(
        data_dir=tmp_path / "api",
        kubernetes={"namespace": NS, "sync_workers": 0, "watch_timeout_seconds": 5},
        rate_limits={"plans": PLANS},
        webhooks={"allow_private_targets": True},
    )
    backend = KubeBackend(settings, kube, store)  # type: ignore[arg-type]
    with serve([(200, {}, b"{}")]) as receiver:
        async with running(create_app(settings, backend)) as api:
            key = api.key(TENANT)
            created = (await api.post(key, "/v1/webhooks", json={"url": receiver.url})).json()
            yield Cluster(op, api, key, receiver, created["id"], created["secret"])
    op.controller.stop()


def failed_delivery(cluster: Cluster) -> tuple[str, dict[str, Any]]:
    """A DocumentJob that ended ten minutes ago, its delivery to the endpoint failed after
    two tries, as the operator leaves one; its id and resource."""
    op = cluster.op
    resource = documentjob(op.store)
    op.kube.create(documentjobs_path(NS), resource)
    job_id = resource["spec"]["jobId"]
    summary = success(TENANT, job_id)
    assert summary.result is not None
    op.store.put_bytes(summary.result.key, b"%PDF-1.7", "application/pdf")
    ended = (utcnow() - timedelta(seconds=600)).isoformat()
    tries = [{"at": ended, "statusCode": 500, "durationMs": 2}] * 2
    status = {
        "phase": "Complete",
        "attempts": 1,
        "startedAt": ended,
        "completedAt": ended,
        "result": summary.result.model_dump(mode="json", by_alias=True),
        "webhooks": {
            "event": "job.completed",
            "state": "Done",
            "deliveries": [
                {
                    "target": cluster.endpoint,
                    "webhookId": message_id(job_id, cluster.endpoint, "job.completed"),
                    "state": "Failed",
                    "attempts": tries,
                    "updatedAt": ended,
                }
            ],
        },
    }
    path = documentjobs_path(NS, resource_name(job_id))
    return job_id, op.kube.write_status(path, status)


def sent_by_operator(cluster: Cluster, resource: dict[str, Any]) -> str:
    """The body the operator's outbox sends for this DocumentJob's end."""
    job = job_of(resource)
    assert job.status.completed_at is not None
    target = Target(cluster.endpoint, cluster.receiver.url, cluster.secret)
    data = job_view(job)
    message = message_to(target, job.spec.job_id, "job.completed", data, job.status.completed_at)
    return SignedMessage(message).body


async def logged(cluster: Cluster, job_id: str) -> dict[str, Any]:
    """The endpoint's log entry of ``job_id``, once the API's watch cache has the job."""
    path = f"/v1/webhooks/{cluster.endpoint}/deliveries"
    with anyio.fail_after(10):
        while True:
            entries = (await cluster.api.get(cluster.key, path)).json()["deliveries"]
            if found := [e for e in entries if e["jobId"] == job_id]:
                return dict(found[0])
            await anyio.sleep(0.05)


async def test_a_replay_is_recorded_on_the_documentjob_then_in_its_archived_record(
    cluster: Cluster,
) -> None:
    api, key, op, receiver = cluster.api, cluster.key, cluster.op, cluster.receiver
    stranger = api.key("someone-else")
    in_cluster, in_cluster_resource = failed_delivery(cluster)
    entry = await logged(cluster, in_cluster)
    assert entry["tries"] == 2 and entry["lastAnswer"]["statusCode"] == 500

    replay = f"/v1/webhooks/{cluster.endpoint}/deliveries/{entry['id']}/replay"
    assert (await api.post(stranger, replay)).status_code == 404
    replayed = await api.post(key, replay)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["delivery"]["tries"] == 3 and replayed.json()["delivery"]["delivered"]
    (sent,) = receiver.received
    assert sent.headers["webhook-id"] == entry["webhookId"]
    assert sent.body.decode() == sent_by_operator(cluster, in_cluster_resource)
    Webhook(cluster.secret).verify(sent.body, sent.headers)
    stored = op.kube.stored(documentjobs_path(NS, resource_name(in_cluster)))
    assert stored is not None
    (delivery,) = stored["status"]["webhooks"]["deliveries"]
    assert delivery["state"] == "Delivered"
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 500, 200]

    archived, archived_resource = failed_delivery(cluster)
    op.deliver()
    op.controller.tick(utcnow())
    with anyio.fail_after(30):
        while op.kube.names(documentjobs_path(NS)):
            await anyio.sleep(0.05)
    deliveries = f"/v1/jobs/{archived}/deliveries"
    assert (await api.get(stranger, deliveries)).status_code == 404
    (entry,) = (await api.get(key, deliveries)).json()["deliveries"]
    assert entry["tries"] == 2
    replayed = await api.post(key, f"{deliveries}/{entry['id']}/replay")
    assert replayed.status_code == 200, replayed.text
    assert receiver.received[-1].body.decode() == sent_by_operator(cluster, archived_resource)
    record = Archive(op.store).read(NS, TENANT, archived)
    assert record is not None
    (delivery,) = record["status"]["webhooks"]["deliveries"]
    assert delivery["state"] == "Delivered" and len(delivery["attempts"]) == 3
