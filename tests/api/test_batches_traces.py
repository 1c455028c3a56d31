"""A batch submitted with a W3C ``traceparent`` joins the client's trace: each of its jobs
keeps that trace, and each job's webhook and the batch's ``batch.completed`` carry it
(embedded mode, in process)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import anyio
import pytest

from docjobs.api.app import create_app
from tests.api.conftest import InProcessApi, app_settings, running
from tests.receivers import LocalServer, Recorded, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    settings = app_settings(
        tmp_path_factory.mktemp("batch-traces") / "data",
        webhooks={"allow_private_targets": True},
    )
    async with running(create_app(settings)) as api:
        yield api


async def arrived(receiver: LocalServer, count: int) -> list[Recorded]:
    """The receiver's first ``count`` requests, waited for without holding up the app."""
    with anyio.fail_after(60):
        while len(receiver.received) < count:
            await anyio.sleep(0.05)
    return receiver.received[:count]


async def test_each_job_of_a_batch_joins_the_clients_trace(api: InProcessApi) -> None:
    key = api.key("traced-batch")
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    files = [("files", (f"n{n}.md", f"# Note {n}".encode(), "text/markdown")) for n in range(3)]
    with serve([(200, {}, b"{}")]) as receiver:
        hook = await api.post(
            key,
            "/v1/webhooks",
            json={"url": receiver.url, "events": ["job.completed", "batch.completed"]},
        )
        assert hook.status_code == 201, hook.text
        answer = await api.client.post(
            "/api/v1/batches",
            headers={"X-API-Key": key, "traceparent": traceparent},
            data={"operation": "convert/markdown-to-pdf"},
            files=files,
        )
        assert answer.status_code == 202, answer.text
        job_ids = [d["job_id"] for d in answer.json()["documents"]]
        assert len(job_ids) == 3 and all(job_ids)
        backend = api.app.state.backend
        for job_id in job_ids:
            job = await backend.get("traced-batch", job_id)
            assert job is not None and job.spec.traceparent is not None
            assert job.spec.traceparent.split("-")[1] == trace_id
        announced = await arrived(receiver, 4)
    ends = [r for r in announced if r.json()["type"] == "job.completed"]
    assert {r.json()["data"]["jobId"] for r in ends} == set(job_ids)
    (batch_end,) = [r for r in announced if r.json()["type"] == "batch.completed"]
    assert batch_end.json()["data"]["batchId"] == answer.json()["batch_id"]
    for delivered in announced:  # each delivery is a span of the client's trace
        assert delivered.headers["traceparent"].split("-")[1] == trace_id


async def test_a_batch_without_traceparent_starts_one_trace_per_job(api: InProcessApi) -> None:
    key = api.key("untraced-batch")
    files = [("files", (f"n{n}.md", f"# Other {n}".encode(), "text/markdown")) for n in range(2)]
    answer = await api.post(
        key, "/api/v1/batches", data={"operation": "convert/markdown-to-pdf"}, files=files
    )
    assert answer.status_code == 202, answer.text
    backend = api.app.state.backend
    traces = set()
    for document in answer.json()["documents"]:
        job = await backend.get("untraced-batch", document["job_id"])
        assert job is not None and job.spec.traceparent is not None
        traces.add(job.spec.traceparent.split("-")[1])
    assert len(traces) == 1  # the request's own trace, shared by its jobs
