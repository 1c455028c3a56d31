"""A job's end goes into the webhook outbox, in the transaction that records it, only when
someone listens: one of the tenant's endpoints subscribed to that event, or the job's own
URL. An end nobody listens to costs no outbox entry and no event to build; one somebody
listens to is durable before it is sent.

Each case holds the delivery threads busy while its jobs end, so that what the outbox holds
at the end's commit is still there to see."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest

from docjobs.api.app import create_app
from docjobs.backends.embedded.backend import EmbeddedBackend
from tests.api.conftest import InProcessApi, app_settings, running
from tests.receivers import serve

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def hooks_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    settings = app_settings(
        tmp_path_factory.mktemp("ends") / "data",
        webhooks={"allow_private_targets": True, "max_parallel_deliveries": 1},
    )
    async with running(create_app(settings)) as api:
        yield api


def backend_of(api: InProcessApi) -> EmbeddedBackend:
    backend = api.app.state.backend
    assert isinstance(backend, EmbeddedBackend)
    return backend


@contextmanager
def deliveries_held(api: InProcessApi) -> Iterator[None]:
    """The only delivery thread busy until the block ends: no event is built meanwhile."""
    release, holding = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        release.wait(60)

    backend_of(api).deliveries.submit(hold)
    assert holding.wait(10)
    try:
        yield
    finally:
        release.set()


def outbox(api: InProcessApi, job_id: str) -> list[str]:
    rows = backend_of(api).db.query(
        "SELECT event_type FROM webhook_outbox WHERE job_id = ?", (job_id,)
    )
    return [str(r["event_type"]) for r in rows]


async def completed_job(api: InProcessApi, key: str, text: str) -> str:
    response = await api.post(key, "/api/v1/convert/text-to-pdf?async=true", data={"content": text})
    assert response.status_code == 202, response.text
    job_id = str(response.json()["job_id"])
    assert (await api.wait_for(key, job_id))["status"] == "complete"
    return job_id


async def test_an_end_nobody_listens_to_leaves_no_outbox_entry(hooks_api: InProcessApi) -> None:
    key = hooks_api.key("unheard")
    with serve([(200, {}, b"{}")]) as receiver:
        # An endpoint for failures only: a completed job has no listener either.
        created = await hooks_api.post(
            key, "/v1/webhooks", json={"url": receiver.url, "events": ["job.failed"]}
        )
        assert created.status_code == 201, created.text
        with deliveries_held(hooks_api):
            job_id = await completed_job(hooks_api, key, "nobody listens")
            assert await asyncio.to_thread(outbox, hooks_api, job_id) == []
        await asyncio.sleep(0.5)  # time for a wrongly built event to go out
    assert receiver.received == []


async def test_an_end_with_a_listener_is_in_the_outbox_until_delivered(
    hooks_api: InProcessApi,
) -> None:
    key = hooks_api.key("heard")
    with serve([(200, {}, b"{}")]) as receiver:
        silent = await completed_job(hooks_api, key, "before any endpoint")
        # Subscribed after the first job ended and before the second is submitted.
        created = await hooks_api.post(
            key, "/v1/webhooks", json={"url": receiver.url, "events": ["job.completed"]}
        )
        assert created.status_code == 201, created.text
        with deliveries_held(hooks_api):
            job_id = await completed_job(hooks_api, key, "somebody listens")
            # Durable with the end, before anything is sent.
            assert await asyncio.to_thread(outbox, hooks_api, job_id) == ["job.completed"]
            assert receiver.received == []
        (delivery,) = await asyncio.to_thread(receiver.wait_for, 1)
    assert job_id.encode() in delivery.body and silent.encode() not in delivery.body
    for _ in range(100):  # the entry goes once the delivery is settled
        if not await asyncio.to_thread(outbox, hooks_api, job_id):
            break
        await asyncio.sleep(0.1)
    assert await asyncio.to_thread(outbox, hooks_api, job_id) == []


async def test_an_end_rolled_back_unheard_does_not_silence_the_next_one(
    hooks_api: InProcessApi,
) -> None:
    """An end recorded while nobody listened whose transaction then rolled back (the disk
    full, say) leaves nothing behind: the job's next end, heard, is sent."""
    key = hooks_api.key("rolled-back")
    backend = backend_of(hooks_api)
    job_id = await completed_job(hooks_api, key, "rolled back")
    job = backend.store.get(job_id)
    assert job is not None

    def end_rolled_back() -> None:
        with pytest.raises(OSError), backend.db.transaction() as conn:
            backend._reserve_event(job, conn)
            raise OSError("disk full")

    def end_committed() -> None:
        with backend.db.transaction() as conn:
            backend._reserve_event(job, conn)

    await asyncio.to_thread(end_rolled_back)
    with serve([(200, {}, b"{}")]) as receiver:
        created = await hooks_api.post(
            key, "/v1/webhooks", json={"url": receiver.url, "events": ["job.completed"]}
        )
        assert created.status_code == 201, created.text
        await asyncio.to_thread(end_committed)
        assert await asyncio.to_thread(outbox, hooks_api, job_id) == ["job.completed"]
        backend._announce(job)
        (delivery,) = await asyncio.to_thread(receiver.wait_for, 1)
    assert job_id.encode() in delivery.body
