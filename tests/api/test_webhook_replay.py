"""The webhook delivery log and replays, in embedded mode against real local receivers.

A receiver that fails every try of a delivery is fixed, and the delivery replayed: the log
shows the failed tries and their answer, the replay carries the same ``webhook-id`` and body
with a fresh timestamp and a signature the endpoint's secret verifies, and is logged as a
further try. The same for a job's own ``webhookUrl``; another tenant sees none of it.

The log and replays are written once over the ``Backend`` and ``WebhookStore`` interfaces
(``docjobs.backends.deliveries``, ``docjobs.webhooks.replay``); only where a replay's try is
recorded differs per backend (the Kubernetes side is covered in ``tests/unit``).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import requests
from standardwebhooks.webhooks import Webhook

from docjobs.api.app import create_app
from docjobs.api.routes import webhooks as webhook_routes
from docjobs.client import AsyncClient
from docjobs.client.errors import ReplayInProgress
from tests.api.conftest import InProcessApi, app_settings, running
from tests.conftest import BIN
from tests.docs import INVOICE_TEMPLATE, invoice_pdf
from tests.receivers import Recorded, Reply, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def hooks_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    settings = app_settings(
        tmp_path_factory.mktemp("replay") / "data",
        webhooks={
            "allow_private_targets": True,
            "max_attempts": 2,
            "initial_backoff_seconds": 0.1,
            "timeout_seconds": 5,
        },
    )
    async with running(create_app(settings)) as api:
        yield api


class Receiver:
    """Answers 500 until fixed, then 200."""

    def __init__(self) -> None:
        self.fixed = False

    def __call__(self, request: Recorded) -> Reply:
        return (200, {}, b"{}") if self.fixed else (500, {}, b"{}")


async def settled(api: InProcessApi, key: str, path: str) -> list[dict[str, Any]]:
    """The deliveries at ``path`` once there are some (they settle after their tries)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = await api.get(key, path)
        assert answer.status_code == 200, answer.text
        if deliveries := answer.json()["deliveries"]:
            return list(deliveries)
        await anyio.sleep(0.1)
    raise AssertionError(f"no delivery at {path}")


async def python_client(api: InProcessApi, key: str) -> AsyncClient:
    """The documented async client, speaking to the in-process app."""
    client = AsyncClient("http://testserver", key)
    await client.http.aclose()
    client.http = api.client
    return client


def assert_replayed(tries: list[Recorded], secret: str) -> None:
    """The last try resends the first: same id and body, newer timestamp, valid signature."""
    first, replay = tries[0], tries[-1]
    assert replay.headers["webhook-id"] == first.headers["webhook-id"]
    assert replay.body == first.body
    assert int(replay.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert replay.headers["webhook-signature"] != first.headers["webhook-signature"]
    Webhook(secret).verify(replay.body, replay.headers)


async def test_a_failed_delivery_to_an_endpoint_is_logged_and_replayed(hooks_api) -> None:
    api, key, stranger = hooks_api, hooks_api.key("replayer"), hooks_api.key("stranger")
    receiver = Receiver()
    with serve(receiver) as server:
        created = await api.post(key, "/v1/webhooks", json={"url": server.url + "/hook"})
        endpoint, secret = created.json()["id"], created.json()["secret"]
        queued = await api.post(
            key, "/api/v1/convert/text-to-pdf?async=true", data={"content": "replay me"}
        )
        job_id = queued.json()["job_id"]
        log_path = f"/v1/webhooks/{endpoint}/deliveries"
        (entry,) = await settled(api, key, log_path)
        assert entry["jobId"] == job_id and entry["event"] == "job.completed"
        assert entry["tries"] == 2 and entry["delivered"] is False
        assert entry["lastAnswer"]["statusCode"] == 500
        assert entry["webhookId"] == server.received[0].headers["webhook-id"]

        replay_path = f"{log_path}/{entry['id']}/replay"
        for refused in (
            await api.get(stranger, log_path),
            await api.post(stranger, replay_path),
            await api.post(stranger, f"/v1/jobs/{job_id}/deliveries/{entry['id']}/replay"),
        ):
            assert refused.status_code == 404, refused.text
        assert len(server.received) == 2

        receiver.fixed = True
        await anyio.sleep(1.05)  # the replay's timestamp is a later second
        replayed = await api.post(key, replay_path)
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["replay"]["statusCode"] == 200
        assert len(server.received) == 3
        assert_replayed(server.received, secret)

    (entry,) = (await api.get(key, log_path)).json()["deliveries"]
    assert entry["tries"] == 3 and entry["delivered"] is True
    assert entry["lastAnswer"]["statusCode"] == 200
    page = await (await python_client(api, key)).webhooks.deliveries(endpoint)
    assert [(d.id, d.tries, d.delivered) for d in page.deliveries] == [(entry["id"], 3, True)]
    detail = (await api.get(key, f"/v1/jobs/{job_id}")).json()
    assert [a["statusCode"] for a in detail["webhooks"][0]["attempts"]] == [500, 500, 200]


async def test_a_jobs_own_webhook_url_is_replayed_likewise(hooks_api) -> None:
    api, key, stranger = hooks_api, hooks_api.key("own-url"), hooks_api.key("own-url-stranger")
    receiver = Receiver()
    template = (await api.post(key, "/v1/templates", json=INVOICE_TEMPLATE)).json()["templateId"]
    with serve(receiver) as server:
        queued = await api.post(
            key,
            "/v1/documents/parse/async",
            files={"file": ("invoice.pdf", invoice_pdf(), "application/pdf")},
            data={"templateId": template, "webhookUrl": server.url + "/mine"},
        )
        job_id = queued.json()["jobId"]
        log_path = f"/v1/jobs/{job_id}/deliveries"
        (entry,) = await settled(api, key, log_path)
        assert entry["target"] == server.url + "/mine" and entry["tries"] == 2
        assert entry["lastAnswer"]["statusCode"] == 500 and not entry["delivered"]

        replay_path = f"{log_path}/{entry['id']}/replay"
        assert (await api.get(stranger, log_path)).status_code == 404
        assert (await api.post(stranger, replay_path)).status_code == 404

        receiver.fixed = True
        await anyio.sleep(1.05)
        replayed = await api.post(key, replay_path)
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["delivery"]["delivered"] is True
        assert replayed.json()["delivery"]["tries"] == 3
    secret = (await api.get(key, "/v1/webhooks/secret/jobs")).json()["secret"]
    assert_replayed(server.received, secret)
    (entry,) = (await api.get(key, log_path)).json()["deliveries"]
    assert entry["tries"] == 3 and entry["lastAnswer"]["statusCode"] == 200
    (delivery,) = await (await python_client(api, key)).webhooks.job_deliveries(job_id)
    assert delivery.last_answer is not None and delivery.last_answer.status_code == 200


async def test_a_replay_to_a_hanging_receiver_answers_at_once_and_one_at_a_time(
    hooks_api, monkeypatch
) -> None:
    api, key = hooks_api, hooks_api.key("hanging")
    monkeypatch.setattr(webhook_routes, "REPLAY_WAIT_SECONDS", 0.5)
    release, hanging = threading.Event(), Receiver()

    def reply(request: Recorded) -> Reply:
        if hanging.fixed:
            release.wait(10)
        return (500, {}, b"{}")

    with serve(reply) as server:
        created = await api.post(key, "/v1/webhooks", json={"url": server.url})
        endpoint = created.json()["id"]
        await api.post(key, "/api/v1/convert/text-to-pdf?async=true", data={"content": "hang"})
        log_path = f"/v1/webhooks/{endpoint}/deliveries"
        (entry,) = await settled(api, key, log_path)
        hanging.fixed = True
        started = time.monotonic()
        pending = await api.post(key, f"{log_path}/{entry['id']}/replay")
        assert pending.status_code == 202 and pending.json()["replay"] is None
        assert time.monotonic() - started < 6  # not held for the receiver's 10 s
        again = await api.post(key, f"{log_path}/{entry['id']}/replay")
        assert again.status_code == 409 and again.json()["error"]["code"] == "replay_in_progress"
        with pytest.raises(ReplayInProgress):
            await (await python_client(api, key)).webhooks.replay(endpoint, entry["id"])
        release.set()
        deadline = time.monotonic() + 10
        while (await api.get(key, log_path)).json()["deliveries"][0]["tries"] < 3:
            assert time.monotonic() < deadline, "the replay's try was never logged"
            await anyio.sleep(0.1)


async def test_an_endpoints_log_reads_in_pages_newest_job_first(hooks_api) -> None:
    api, key = hooks_api, hooks_api.key("pages")
    with serve([(200, {}, b"{}")]) as server:
        endpoint = (await api.post(key, "/v1/webhooks", json={"url": server.url})).json()["id"]
        jobs = []
        for n in range(3):
            queued = await api.post(
                key, "/api/v1/convert/text-to-pdf?async=true", data={"content": f"page {n}"}
            )
            jobs.append(queued.json()["job_id"])
        log_path = f"/v1/webhooks/{endpoint}/deliveries"
        deadline = time.monotonic() + 30
        while len((await api.get(key, log_path)).json()["deliveries"]) < 3:
            assert time.monotonic() < deadline
            await anyio.sleep(0.1)
    first = (await api.get(key, log_path, params={"limit": 2})).json()
    assert [d["jobId"] for d in first["deliveries"]] == jobs[:0:-1]
    cursor = first["nextCursor"]
    rest = (await api.get(key, log_path, params={"limit": 2, "cursor": cursor})).json()
    assert [d["jobId"] for d in rest["deliveries"]] == jobs[:1]
    assert rest.get("nextCursor") is None
    refused = await api.get(key, log_path, params={"cursor": "not-one"})
    assert refused.status_code == 422


def test_the_cli_lists_and_replays_a_delivery(make_server) -> None:
    srv = make_server(
        DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS="true", DOCJOBS_WEBHOOKS__MAX_ATTEMPTS="1"
    ).start()
    key = srv.key("cli-replay")
    env = {**os.environ, "DOCJOBS_URL": srv.base, "DOCJOBS_API_KEY": key}

    def docjobs(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "docjobs"), "webhooks", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)

    receiver = Receiver()
    with serve(receiver) as server:
        endpoint = requests.post(
            f"{srv.base}/v1/webhooks", headers={"X-API-Key": key}, json={"url": server.url}
        ).json()["id"]
        requests.post(
            f"{srv.base}/api/v1/convert/text-to-pdf?async=true",
            headers={"X-API-Key": key},
            data={"content": "by the cli"},
        )
        deadline = time.monotonic() + 30
        while "HTTP 500" not in (listed := docjobs("deliveries", endpoint)).stdout:
            assert time.monotonic() < deadline, listed
            time.sleep(0.2)
        delivery_id = listed.stdout.splitlines()[1].split()[0]
        receiver.fixed = True
        replayed = docjobs("replay", endpoint, delivery_id)
        assert replayed.returncode == 0, replayed.stderr
        assert f"Replayed {delivery_id}: HTTP 200" in replayed.stdout
        assert len(server.received) == 2
    job_id = delivery_id.split(".")[0]
    row = docjobs("deliveries", job_id).stdout.splitlines()[1].split()
    assert row[0] == delivery_id and row[3:6] == ["2", "HTTP", "200"] and row[6] == "yes"
