"""Finished DocumentJobs archived to the object store, in process: a real ``Controller`` and
a real ``KubeBackend`` behind the real app, on the fake API server and one local store.

The operator archives finished jobs and deletes them from the (fake) cluster; the API then
answers every read of them exactly as before, lists them with the active ones, answers a
duplicate with its archived twin, and forgets them at their TTL.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from docjobs.api.app import create_app
from docjobs.backends.base import listing_position
from docjobs.backends.kubernetes.archived import ArchivedJobs
from docjobs.backends.kubernetes.backend import (
    MAX_SUCCESSOR_TRIES,
    KubeBackend,
    job_id_of_fingerprint,
)
from docjobs.backends.kubernetes.webhooks import SecretWebhookStore
from docjobs.config import OperatorSettings, Settings
from docjobs.domain.clock import utcnow
from docjobs.domain.models import Job
from docjobs.kube.archive import (
    EXPIRY_FOLDER,
    Archive,
    listed_of,
    listing_after,
    listing_folder,
    listing_key,
    record_key,
)
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import job_of, resource_name
from docjobs.operator.archive import Archiver
from docjobs.operator.hooks import TerminalHook
from docjobs.storage.base import result_key
from docjobs.storage.local import LocalStore
from docjobs.webhooks.policy import WebhookSettings
from tests.api.conftest import PLANS, InProcessApi, running
from tests.fakekube import FakeKube, SigningLocalStore
from tests.unit.operated import NS, TENANT, Operated, documentjob, success, wait_until
from tests.unit.test_documentjob_spec import documentjob_resource

ARCHIVED = 400
"""Enough that each listing below takes several pages (of 100, of 70), before and after."""
SAMPLE = 25
"""Archived jobs whose bodies are compared through the app (every one through ``get``)."""
pytestmark = pytest.mark.anyio


class ReadyKube(FakeKube):
    """The fake API server, answering the API's readiness check too."""

    def get_text(self, path: str) -> str:
        return "ok"


class BucketStore(SigningLocalStore):
    """The local store as the Kubernetes backend holds its S3 store (it names a bucket)."""

    bucket: str | None = None


@dataclass
class Cluster:
    op: Operated
    backend: KubeBackend
    api: InProcessApi
    key: str

    @property
    def kube(self) -> FakeKube:
        return self.op.kube

    def documentjobs(self) -> list[str]:
        return self.kube.names(documentjobs_path(NS))

    def archive_due(self, *, expect_left: int = 0) -> None:
        """The operator's tick takes the jobs due; wait until it archived them."""
        self.op.controller.tick(utcnow())
        wait_until(lambda: len(self.documentjobs()) == expect_left, 60, "jobs archived")
        self.op.deliver()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def objects(tmp_path: Path) -> Iterator[Path]:
    """The store's directory: in memory where the machine has a tmpfs, since the local
    store syncs every object it writes and these tests write thousands."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path / "objects"
        return
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="docjobs-archive-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def cluster(tmp_path: Path, objects: Path) -> AsyncIterator[Cluster]:
    kube = ReadyKube()
    store = BucketStore(objects)
    operator = OperatorSettings(runner_image="docjobs:test", archive_after_seconds=1)
    op = Operated(kube, store, operator)
    settings = Settings(
        data_dir=tmp_path / "api",
        kubernetes={"namespace": NS, "sync_workers": 0, "watch_timeout_seconds": 5},
        rate_limits={"plans": PLANS},
    )
    backend = KubeBackend(settings, kube, store)  # type: ignore[arg-type]
    async with running(create_app(settings, backend)) as api:
        key = api.key(TENANT)
        yield Cluster(op, backend, api, key)
    op.controller.stop()


def finished(op: Operated, ended_ago: float, ttl: int = 86400, **fields: Any) -> str:
    """A DocumentJob that ended ``ended_ago`` seconds ago with a result and a delivered
    webhook, as the operator leaves one; its name."""
    resource = documentjob(op.store, ttl_seconds_after_finished=ttl, **fields)
    op.kube.create(documentjobs_path(NS), resource)
    name = str(resource["metadata"]["name"])
    job_id = resource["spec"]["jobId"]
    summary = success(TENANT, job_id)
    assert summary.result is not None
    op.store.put_bytes(summary.result.key, b"%PDF-1.7 " + job_id.encode(), "application/pdf")
    ended = (utcnow() - timedelta(seconds=ended_ago)).isoformat()
    status = {
        "phase": "Complete",
        "attempts": 1,
        "startedAt": ended,
        "completedAt": ended,
        "message": "Job completed",
        "progress": {"pagesDone": 1, "pagesTotal": 1},
        "result": summary.result.model_dump(mode="json", by_alias=True),
        "duration": "1s",
        "webhooks": {
            "event": "job.completed",
            "state": "Done",
            "deliveries": [
                {
                    "target": "https://hooks.example.com/x",
                    "webhookId": f"msg_{job_id}",
                    "state": "Delivered",
                    "attempts": [{"at": ended, "statusCode": 200, "durationMs": 3}],
                    "updatedAt": ended,
                }
            ],
        },
    }
    op.kube.write_status(documentjobs_path(NS, name), status)
    return job_id


async def bodies(api: InProcessApi, key: str, job_id: str) -> tuple[Any, ...]:
    """What both API families answer about a job: its view, its result, the parse view."""
    job = await api.get(key, f"/api/v1/jobs/{job_id}")
    result = await api.get(key, f"/api/v1/jobs/{job_id}/result")
    parse = await api.get(key, f"/v1/jobs/{job_id}")
    return job.status_code, job.json(), result.status_code, result.content, parse.json()


async def listing(api: InProcessApi, key: str, **query: Any) -> tuple[list[str], int]:
    """Every page of the tenant's listing: the job ids in order, the total."""
    ids: list[str] = []
    cursor: str | None = None
    total = -1
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(key, "/api/v1/jobs", params=params)).json()
        ids += [job["job_id"] for job in page["jobs"]]
        total = page["total"]
        cursor = page.get("next_cursor")
        if not cursor:
            return ids, total


async def test_finished_jobs_leave_the_cluster_and_read_as_before(cluster: Cluster) -> None:
    op, api, key, backend = cluster.op, cluster.api, cluster.key, cluster.backend
    archived = [finished(op, ended_ago=600) for _ in range(ARCHIVED)]
    waiting = finished(op, ended_ago=600)  # its webhook is still being delivered
    pending_outbox = op.status(resource_name(waiting))
    pending_outbox["webhooks"]["state"] = "Pending"
    op.kube.write_status(documentjobs_path(NS, resource_name(waiting)), pending_outbox)
    running_job = op.submit()  # still at work: stays in the cluster
    op.deliver()
    wait_until(lambda: len(backend.jobs.values()) == ARCHIVED + 2, 30, "the API's cache")
    before = {job_id: await backend.get(TENANT, job_id) for job_id in archived}
    sample = random.Random(7).sample(archived, SAMPLE)
    seen = {job_id: await bodies(api, key, job_id) for job_id in sample}
    listed = await listing(api, key, limit=100)
    completed = await listing(api, key, limit=70, status="complete")

    cluster.archive_due(expect_left=2)

    assert sorted(cluster.documentjobs()) == sorted([resource_name(waiting), running_job])
    wait_until(lambda: len(backend.jobs.values()) == 2, 30, "the cache let go of them")
    for job_id in archived:
        assert await backend.get(TENANT, job_id) == before[job_id]
        assert await backend.get("other", job_id) is None
    elsewhere = ArchivedJobs(op.store, "another-install", lambda _: False)
    assert elsewhere.find(TENANT, archived[0]) is None  # one bucket, two namespaces
    for job_id in sample:
        assert await bodies(api, key, job_id) == seen[job_id]
    assert await listing(api, key, limit=100) == listed
    assert await listing(api, key, limit=70, status="complete") == completed
    assert (await listing(api, key, status="processing"))[1] == 0
    events = await api.client.get(
        f"/api/v1/jobs/{sample[0]}/events", headers={"X-API-Key": key}, timeout=10
    )
    assert "event: end" in events.text


async def test_a_duplicate_of_an_archived_job_answers_with_it(cluster: Cluster) -> None:
    api, key, op = cluster.api, cluster.key, cluster.op
    upload = {"file": ("a.txt", b"the same words", "text/plain")}
    first = (await api.post(key, "/api/v1/convert/text-to-pdf?async=true", files=upload)).json()
    name = resource_name(first["job_id"])
    op.deliver()
    op.start(name)
    op.store_outcome(name, 1)
    op.finish(f"{name}-a1", 0, success(TENANT, first["job_id"]))
    assert op.status(name)["phase"] == "Complete"
    wait_until(lambda: (job := cluster.backend.jobs.get(name)) and job.status.phase.terminal, 10)
    assert op.status(name)["webhooks"]["state"] == "Pending"
    assert not op.controller.archiver.due(op.resource(name), utcnow() + timedelta(hours=1))
    hook = TerminalHook(kube := op.kube, lambda ns: SecretWebhookStore(kube, ns), WebhookSettings())
    hook.seen(op.resource(name))  # the operator's webhook hook: no endpoint, nothing to send
    wait_until(lambda: op.status(name)["webhooks"]["state"] == "Done", 10, "outbox settled")
    hook.close()
    op.deliver()
    done = (await api.get(key, f"/api/v1/jobs/{first['job_id']}")).json()
    wait_until(lambda: op.controller.archiver.due(op.resource(name), utcnow()), 5, "due")

    cluster.archive_due()

    again = await api.post(key, "/api/v1/convert/text-to-pdf?async=true", files=upload)
    assert again.json()["job_id"] == first["job_id"]
    assert again.json()["status"] == done["status"] == "complete"
    assert (await api.get(key, f"/api/v1/jobs/{first['job_id']}")).json() == done
    assert cluster.documentjobs() == []  # not created again
    sync = await api.post(key, "/api/v1/convert/text-to-pdf", files=upload)
    assert sync.status_code == 200
    assert sync.content == b"%PDF-1.7"


async def test_a_document_failed_more_often_than_names_are_tried_runs_again(
    cluster: Cluster,
) -> None:
    """Its failed twins are all archived: the resubmission takes the first free name."""
    api, key, op, backend = cluster.api, cluster.key, cluster.op, cluster.backend
    upload = {"file": ("a.txt", b"words that keep failing", "text/plain")}
    first = (await api.post(key, "/api/v1/convert/text-to-pdf?async=true", files=upload)).json()
    base = first["job_id"]
    op.kube.delete(documentjobs_path(NS, resource_name(base)))
    wait_until(lambda: backend.jobs.get(resource_name(base)) is None, 10, "the cache let go")
    failed = [base, *(f"{base}-{n}" for n in range(2, MAX_SUCCESSOR_TRIES + 3))]
    for job_id in failed:
        resource = documentjob_resource(job_id, tenant=TENANT, namespace=NS)
        resource["status"] = {"phase": "Failed", "completedAt": utcnow().isoformat()}
        Archive(op.store).put(resource, utcnow())

    again = await api.post(key, "/api/v1/convert/text-to-pdf?async=true", files=upload)

    assert again.status_code == 202, again.text
    fresh = f"{base}-{len(failed) + 1}"
    assert again.json()["job_id"] == fresh
    assert cluster.documentjobs() == [resource_name(fresh)]
    assert (await api.get(key, f"/api/v1/jobs/{failed[-1]}")).json()["status"] == "failed"


async def test_an_erased_job_stays_erased(cluster: Cluster) -> None:
    """Erased once archived, or while the operator archives it: no record brings it back."""
    api, key, op = cluster.api, cluster.key, cluster.op
    cluster.backend.archived.fresh_seconds = 0  # as any API replica reads it
    archived, racing = finished(op, ended_ago=600), finished(op, ended_ago=600)
    racing_path = documentjobs_path(NS, resource_name(racing))
    read_by_operator = op.resource(resource_name(racing))
    op.deliver()
    cluster.archive_due(expect_left=0)
    erased = await api.client.delete(f"/api/v1/jobs/{archived}", headers={"X-API-Key": key})
    assert erased.status_code == 204
    # A second operator (a rollout's overlap) that read it before it went: the record stays.
    op.controller.archiver.archive_job(racing_path, read_by_operator, utcnow())
    assert (await api.get(key, f"/api/v1/jobs/{racing}")).status_code == 200
    # Erased between the operator's read and its delete: what the operator wrote goes too.
    op.store.delete_prefix(f"{TENANT}/{racing}")

    op.controller.archiver.archive_job(racing_path, read_by_operator, utcnow())

    for job_id in (archived, racing):
        assert (await api.get(key, f"/api/v1/jobs/{job_id}")).status_code == 404
        assert not op.store.exists(record_key(TENANT, job_id))
    assert await listing(api, key) == ([], 0)


async def test_archived_jobs_are_gone_at_their_ttl(cluster: Cluster) -> None:
    api, key, op = cluster.api, cluster.key, cluster.op
    short = [finished(op, ended_ago=2, ttl=4) for _ in range(3)]
    kept = finished(op, ended_ago=2)
    op.deliver()
    cluster.archive_due()
    for job_id in [*short, kept]:
        assert (await api.get(key, f"/api/v1/jobs/{job_id}")).status_code == 200

    await anyio.sleep(2.5)

    for job_id in short:
        assert (await api.get(key, f"/api/v1/jobs/{job_id}")).status_code == 404
        assert (await api.get(key, f"/v1/jobs/{job_id}")).status_code == 404
    assert await listing(api, key) == ([kept], 1)
    op.controller.archiver.sweep(utcnow() + timedelta(minutes=2))
    for job_id in short:
        assert not op.store.exists(record_key(TENANT, job_id))
        assert not op.store.exists(result_key(TENANT, job_id, ".pdf"))
    assert op.store.exists(record_key(TENANT, kept))
    assert len(list(op.store.keys(listing_folder(TENANT, NS)))) == 1
    assert len(list(op.store.keys(EXPIRY_FOLDER))) == 1


# --- the keys ----------------------------------------------------------------------------------


def test_listing_entries_sort_as_listings_read() -> None:
    """Newest first, ties broken by the id descending (successors ``-n`` included), and a
    cursor's ``start_after`` lands right after its job."""
    rng = random.Random(3)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    jobs: list[Job] = []
    for n in range(300):
        job_id = job_id_of_fingerprint(f"{rng.randrange(16**24):024x}" + "0" * 40, n % 3 + 1)
        resource = documentjob_resource(job_id)
        resource["spec"]["createdAt"] = (
            base + timedelta(microseconds=rng.randrange(5))
        ).isoformat()
        resource["status"] = {"phase": "Complete", "completedAt": base.isoformat()}
        jobs.append(job_of(resource))
    by_listing = sorted(jobs, key=listing_position, reverse=True)
    by_key = sorted(jobs, key=lambda job: listing_key(job, NS))
    assert [j.spec.job_id for j in by_key] == [j.spec.job_id for j in by_listing]
    keys = sorted(listing_key(j, NS) for j in jobs)
    for at, job in enumerate(by_listing[:-1]):
        start = listing_after(TENANT, NS, listing_position(job))
        assert min(k for k in keys if k > start) == keys[at + 1]
        assert listed_of(keys[at]).job_id == job.spec.job_id


@pytest.mark.parametrize(("ttl", "archived"), [(3600, True), (5, False)])
def test_a_job_past_its_ttl_expires_instead(tmp_path: Path, ttl: int, archived: bool) -> None:
    settings = OperatorSettings(runner_image="docjobs:test", archive_after_seconds=1)
    archiver = Archiver(FakeKube(), LocalStore(tmp_path), settings)
    resource = documentjob_resource(job_id_of_fingerprint("ab" * 32), TENANT, NS)
    resource["spec"]["ttlSecondsAfterFinished"] = ttl
    ended = utcnow() - timedelta(seconds=10)
    resource["status"] = {"phase": "Complete", "completedAt": ended.isoformat()}
    assert archiver.due(resource, utcnow()) is archived
