"""A batch's ``batch.completed`` in the webhook delivery log, and its replay, in embedded
mode against a real local receiver: the endpoint's log lists it beside its jobs' events,
newest first across pages, with the batch's id where a job's event has its job's; replayed,
it carries the same ``webhook-id`` and body, signed afresh; another tenant sees none of it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from docjobs.api.app import create_app
from tests.api.conftest import InProcessApi, app_settings, running
from tests.api.test_webhook_replay import Receiver, assert_replayed
from tests.receivers import serve

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    settings = app_settings(
        tmp_path_factory.mktemp("batch-deliveries") / "data",
        webhooks={
            "allow_private_targets": True,
            "max_attempts": 2,
            "initial_backoff_seconds": 0.1,
            "timeout_seconds": 5,
        },
    )
    async with running(create_app(settings)) as api:
        yield api


async def whole_log(api: InProcessApi, key: str, path: str, limit: int) -> list[dict[str, Any]]:
    """Every entry of a delivery log, read ``limit`` at a time from cursor to cursor."""
    entries: list[dict[str, Any]] = []
    cursor = None
    for _ in range(20):
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = await api.get(key, path, params=params)
        assert page.status_code == 200, page.text
        entries += page.json()["deliveries"]
        cursor = page.json().get("nextCursor")
        if cursor is None:
            return entries
    raise AssertionError(f"{path} never ended")


async def settled_log(api: InProcessApi, key: str, path: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        entries = await whole_log(api, key, path, 100)
        if len(entries) >= count:
            return entries
        await anyio.sleep(0.1)
    raise AssertionError(f"fewer than {count} deliveries at {path}")


async def test_a_batch_delivery_is_logged_paged_and_replayed(api: InProcessApi) -> None:
    key, stranger = api.key("batch-replayer"), api.key("batch-stranger")
    receiver = Receiver()
    with serve(receiver) as server:
        created = await api.post(
            key,
            "/v1/webhooks",
            json={"url": server.url, "events": ["job.completed", "batch.completed"]},
        )
        endpoint, secret = created.json()["id"], created.json()["secret"]
        files = [("files", (f"{n}.txt", f"batch text {n}".encode(), "text/plain")) for n in (1, 2)]
        submitted = await api.post(
            key, "/api/v1/batches", data={"operation": "convert/text-to-pdf"}, files=files
        )
        assert submitted.status_code == 202, submitted.text
        batch_id = submitted.json()["batch_id"]
        job_ids = {d["job_id"] for d in submitted.json()["documents"]}

        log_path = f"/v1/webhooks/{endpoint}/deliveries"
        entries = await settled_log(api, key, log_path, 3)
        # Newest first: the batch was created before its jobs.
        assert [e["event"] for e in entries] == ["job.completed"] * 2 + ["batch.completed"]
        assert {e["jobId"] for e in entries[:2]} == job_ids
        assert all(e["batchId"] is None for e in entries[:2])
        entry = entries[2]
        assert entry["batchId"] == batch_id and entry["jobId"] is None
        assert entry["id"].startswith(f"{batch_id}.")
        assert entry["tries"] == 2 and entry["delivered"] is False
        assert entry["lastAnswer"]["statusCode"] == 500
        first_tries = [r for r in server.received if r.json()["type"] == "batch.completed"]
        assert [r.headers["webhook-id"] for r in first_tries] == [entry["webhookId"]] * 2
        # Page by page, the same entries in the same order.
        assert await whole_log(api, key, log_path, 1) == entries

        replay_path = f"{log_path}/{entry['id']}/replay"
        for refused in (
            await api.get(stranger, log_path),
            await api.post(stranger, replay_path),
            await api.post(key, f"/v1/jobs/{batch_id}/deliveries/{entry['id']}/replay"),
        ):
            assert refused.status_code == 404, refused.text

        receiver.fixed = True
        await anyio.sleep(1.05)  # the replay's timestamp is a later second
        sent_before = len(server.received)
        replayed = await api.post(key, replay_path)
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["replay"]["statusCode"] == 200
        assert replayed.json()["delivery"]["batchId"] == batch_id
        assert len(server.received) == sent_before + 1
        assert_replayed([first_tries[0], server.received[-1]], secret)

    (entry,) = [e for e in await whole_log(api, key, log_path, 100) if e["batchId"]]
    assert entry["tries"] == 3 and entry["delivered"] is True
    assert entry["lastAnswer"]["statusCode"] == 200
