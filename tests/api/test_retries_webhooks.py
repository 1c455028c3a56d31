"""Retries decided by the lifecycle, the llm engine against a Claude stand-in, and webhooks.

Claude itself cannot run here: a local HTTP server that speaks the Anthropic Messages API
stands in for it (``tests.receivers``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.conftest import Server
from tests.docs import INVOICE_TEMPLATE, invoice_pdf
from tests.receivers import LocalServer, claude_overloaded, claude_tool_answer, serve

BACKOFF = 2.0
ANSWER = {
    "invoice": {
        "number": "INV-2025-001",
        "date": "2025-05-26",
        "total": 1250.75,
        "vendor": "Acme Corporation",
    }
}


def headers(key: str) -> dict[str, str]:
    return {"x-api-key": key}


@pytest.fixture(scope="module")
def claude_standin() -> Iterator[LocalServer]:
    with serve([]) as standin:
        yield standin


@pytest.fixture
def claude(claude_standin: LocalServer) -> LocalServer:
    """The stand-in, answering every request with ``ANSWER`` until a test says otherwise."""
    claude_standin.replies[:] = [(200, {}, claude_tool_answer(ANSWER))]
    claude_standin.received.clear()
    return claude_standin


@pytest.fixture(scope="module")
def llm_service(
    tmp_path_factory: pytest.TempPathFactory, claude_standin: LocalServer
) -> Iterator[Server]:
    """One server for the module's tests, which keep apart by their documents."""
    env = {
        "DOCJOBS_LLM__BASE_URL": claude_standin.url,
        "DOCJOBS_LLM__API_KEY": "standin-key",
        "DOCJOBS_JOBS__RETRY__INITIAL_BACKOFF_SECONDS": str(BACKOFF),
        "DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
        "DOCJOBS_WEBHOOKS__INITIAL_BACKOFF_SECONDS": "0.2",
    }
    srv = Server(tmp_path_factory.mktemp("llm") / "data", env=env).start()
    srv.api_key = srv.key("llm-user")
    template = {**INVOICE_TEMPLATE, "engine": "llm"}
    srv.template_id = requests.post(
        f"{srv.base}/v1/templates", headers=headers(srv.api_key), json=template
    ).json()["templateId"]
    yield srv
    srv.stop()


@pytest.fixture
def llm_server(llm_service: Server, claude: LocalServer) -> Server:
    return llm_service


def submit(srv, pdf: bytes, **data: str) -> str:
    response = requests.post(
        f"{srv.base}/v1/documents/parse/async",
        headers=headers(srv.api_key),
        files={"file": ("invoice.pdf", pdf, "application/pdf")},
        data={"templateId": srv.template_id, **data},
    )
    assert response.status_code == 202, response.text
    return response.json()["jobId"]


def follow(srv, job_id: str, timeout: float = 120) -> tuple[dict, list[str]]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = requests.get(f"{srv.base}/v1/jobs/{job_id}", headers=headers(srv.api_key)).json()
        if not seen or seen[-1] != view["status"]:
            seen.append(view["status"])
        if view["status"] in ("completed", "failed", "cancelled"):
            return view, seen
        time.sleep(0.1)
    raise AssertionError(f"job still {seen}")


def test_llm_request_carries_schema_and_document(llm_server, claude) -> None:
    view, _ = follow(llm_server, submit(llm_server, invoice_pdf(number="INV-LLM-1")))
    assert view["status"] == "completed" and view["result"] == ANSWER
    request = claude.received[-1]
    assert request.path.endswith("/v1/messages")
    body = request.json()
    schema = json.dumps(body["tools"][0]["input_schema"])
    assert "invoice" in schema and "number" in schema and "total" in schema
    assert "INV-LLM-1" in json.dumps(body["messages"])
    credentials = request.headers.get("x-api-key") or request.headers.get("authorization", "")
    assert credentials.endswith("standin-key")


def test_transient_failure_retries_after_the_backoff(llm_server, claude) -> None:
    claude.replies[:] = [(529, {}, claude_overloaded()), (200, {}, claude_tool_answer(ANSWER))]
    claude.received.clear()
    view, seen = follow(llm_server, submit(llm_server, invoice_pdf(number="INV-RETRY-2")))
    assert view["status"] == "completed" and view["attempts"] == 2
    assert "retrying" in seen
    first, second = claude.received[:2]
    assert second.at - first.at >= BACKOFF


def test_malformed_answer_fails_at_once(llm_server, claude) -> None:
    claude.replies[:] = [(200, {}, claude_tool_answer({"invoice": {"total": "lots"}}))]
    claude.received.clear()
    view, _ = follow(llm_server, submit(llm_server, invoice_pdf(number="INV-BAD-3")))
    assert view["status"] == "failed" and view["attempts"] == 1
    assert view["error"] and view["result"] is None
    assert len(claude.received) == 1


def test_webhook_is_signed_and_redelivered_after_a_500(llm_server) -> None:
    with serve([(500, {}, b"{}"), (200, {}, b"{}")]) as receiver:
        created = requests.post(
            f"{llm_server.base}/v1/webhooks",
            headers=headers(llm_server.api_key),
            json={"url": receiver.url + "/hook"},
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        job_id = submit(llm_server, invoice_pdf(number="INV-HOOK-4"))
        first, second = receiver.wait_for(2)
        event = Webhook(secret).verify(second.body, second.headers)
        assert event["type"] == "job.completed"
        assert event["data"]["jobId"] == job_id
        assert event["data"]["result"] == ANSWER
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        with pytest.raises(Exception):
            Webhook("whsec_" + "A" * 43).verify(second.body, second.headers)
    for _ in range(100):
        view = requests.get(
            f"{llm_server.base}/v1/jobs/{job_id}", headers=headers(llm_server.api_key)
        ).json()
        if view["webhooks"]:
            break
        time.sleep(0.1)
    delivery = view["webhooks"][0]
    assert delivery["delivered"] is True
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 200]


def test_per_job_webhook_url(llm_server) -> None:
    with serve([(200, {}, b"{}")]) as receiver:
        job_id = submit(
            llm_server, invoice_pdf(number="INV-JOBURL-5"), webhookUrl=receiver.url + "/job"
        )
        (delivery,) = receiver.wait_for(1)
    secret = requests.get(
        f"{llm_server.base}/v1/webhooks/secret/jobs", headers=headers(llm_server.api_key)
    ).json()["secret"]
    assert Webhook(secret).verify(delivery.body, delivery.headers)["data"]["jobId"] == job_id


@pytest.mark.anyio
async def test_loopback_webhooks_are_refused_by_default(api) -> None:
    key = api.key("loopback")
    with serve([(200, {}, b"{}")]) as receiver:
        for url in (
            receiver.url,
            f"http://localhost:{receiver.port}/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
        ):
            response = await api.post(key, "/v1/webhooks", json={"url": url})
            assert response.status_code == 400, url
            assert response.json()["error"]["code"] == "unsafe_webhook_url"
            # A user trying webhooks locally learns which setting allows it.
            assert "DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS" in response.json()["error"]["message"]
        template_id = (await api.post(key, "/v1/templates", json=INVOICE_TEMPLATE)).json()[
            "templateId"
        ]
        refused = await api.post(
            key,
            "/v1/documents/parse/async",
            files={"file": ("i.pdf", invoice_pdf(), "application/pdf")},
            data={"templateId": template_id, "webhookUrl": receiver.url},
        )
        assert refused.status_code == 400
        assert receiver.received == []


@pytest.mark.anyio
async def test_webhook_endpoints_are_managed_per_tenant(api) -> None:
    owner, stranger = api.key("hooks-owner"), api.key("hooks-stranger")
    url = "https://hooks.example.com/docjobs"
    created = await api.post(owner, "/v1/webhooks", json={"url": url, "description": "ops"})
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["events"] == ["job.completed", "job.failed", "job.cancelled"]
    path = f"/v1/webhooks/{endpoint['id']}"
    shown = (await api.get(owner, path)).json()
    assert "secret" not in shown and shown["url"] == url and shown["description"] == "ops"
    listed = (await api.get(owner, "/v1/webhooks")).json()
    assert listed["total"] == 1 and listed["webhooks"] == [shown]

    changed = await api.request("PATCH", owner, path, json={"events": ["job.failed"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["job.failed"] and changed.json()["url"] == url
    unknown = await api.request("PATCH", owner, path, json={"events": ["job.exploded"]})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "invalid_webhook"

    for method in ("GET", "PATCH", "DELETE"):
        assert (await api.request(method, stranger, path, json={})).status_code == 404
    assert (await api.get(stranger, "/v1/webhooks")).json()["total"] == 0
    assert (await api.request("DELETE", owner, path)).status_code == 204
    assert (await api.get(owner, path)).json()["error"]["code"] == "webhook_not_found"


def test_webhook_delivery_resumes_after_a_crash(make_server) -> None:
    srv = make_server(
        DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS="true",
        DOCJOBS_WEBHOOKS__INITIAL_BACKOFF_SECONDS="0.3",
        DOCJOBS_WEBHOOKS__MAX_BACKOFF_SECONDS="0.3",
        DOCJOBS_WEBHOOKS__MAX_ATTEMPTS="20",
    ).start()
    key = srv.key("outbox")
    receiving = {"up": False}

    def reply(_):
        return (200, {}, b"{}") if receiving["up"] else (503, {}, b"{}")

    with serve(reply) as receiver:
        secret = requests.post(
            f"{srv.base}/v1/webhooks", headers=headers(key), json={"url": receiver.url}
        ).json()["secret"]
        job_id = requests.post(
            f"{srv.base}/api/v1/convert/text-to-pdf?async=true",
            headers=headers(key),
            data={"content": "announce me"},
        ).json()["job_id"]
        receiver.wait_for(2)  # the receiver is down: delivery keeps trying

        srv.kill()
        receiving["up"] = True
        tried_before = len(receiver.received)
        srv.start()

        deadline = time.monotonic() + 60
        while len(receiver.received) == tried_before:
            assert time.monotonic() < deadline, "the delivery did not resume"
            time.sleep(0.1)
        resumed = receiver.received[tried_before]
        event = Webhook(secret).verify(resumed.body, resumed.headers)
        assert event["type"] == "job.completed" and event["data"]["jobId"] == job_id
        assert resumed.headers["webhook-id"] == receiver.received[0].headers["webhook-id"]
        time.sleep(1)
        assert len(receiver.received) == tried_before + 1, "delivered more than once"


def test_a_failing_delivery_keeps_its_tries_across_a_kill(make_server) -> None:
    srv = make_server(
        DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS="true",
        DOCJOBS_WEBHOOKS__MAX_ATTEMPTS="3",
        DOCJOBS_WEBHOOKS__INITIAL_BACKOFF_SECONDS="3",
        DOCJOBS_WEBHOOKS__MAX_BACKOFF_SECONDS="3",
    ).start()
    key = srv.key("tries")
    with serve([(500, {}, b"{}")]) as receiver:
        requests.post(f"{srv.base}/v1/webhooks", headers=headers(key), json={"url": receiver.url})
        job_id = requests.post(
            f"{srv.base}/api/v1/convert/text-to-pdf?async=true",
            headers=headers(key),
            data={"content": "announce me"},
        ).json()["job_id"]
        receiver.wait_for(1)
        db = sqlite3.connect(srv.data_dir / "docjobs.db")
        deadline = time.monotonic() + 10
        while not db.execute("SELECT 1 FROM webhook_tries WHERE job_id = ?", (job_id,)).fetchone():
            assert time.monotonic() < deadline, "the first try was not recorded"
            time.sleep(0.05)
        db.close()

        srv.kill()  # SIGKILL, during the first try's backoff
        assert len(receiver.received) == 1
        srv.start()

        deadline = time.monotonic() + 60
        view = requests.get(f"{srv.base}/v1/jobs/{job_id}", headers=headers(key)).json()
        while not view["webhooks"]:
            assert time.monotonic() < deadline, "the delivery did not settle"
            time.sleep(0.2)
            view = requests.get(f"{srv.base}/v1/jobs/{job_id}", headers=headers(key)).json()
        time.sleep(1)
        # Three tries in all, the one before the kill counted: the policy's, no more.
        assert len(receiver.received) == 3
        first, second, _ = receiver.received
        assert second.at - first.at >= 3  # the recorded backoff, kept across the restart
        assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    (delivery,) = view["webhooks"]
    assert delivery["delivered"] is False
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 500, 500]
