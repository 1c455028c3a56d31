"""Batches in embedded mode: many documents in one request, each a job of its own, followed
as one batch with one ``batch.completed`` webhook at its end."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from standardwebhooks.webhooks import Webhook

from docjobs.api.app import create_app
from docjobs.client import AsyncClient
from tests.api.conftest import InProcessApi, app_settings, running
from tests.docs import pdf_with_pages
from tests.receivers import serve

pytestmark = pytest.mark.anyio

MAX_FILES = 60


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    settings = app_settings(
        tmp_path_factory.mktemp("batches") / "data",
        runner={"concurrency": 2},
        limits={"max_batch_files": MAX_FILES},
        webhooks={"allow_private_targets": True, "initial_backoff_seconds": 0.1},
    )
    with pytest.MonkeyPatch.context() as patch:
        # The runner workers read it: a long text makes more pages, and its job fails.
        patch.setenv("DOCJOBS_CEILINGS__MAX_CONVERT_PAGES", "2")
        async with running(create_app(settings)) as api:
            yield api


def mixed_files(count: int) -> tuple[list[tuple[str, tuple[str, bytes, str]]], int, int]:
    """``count`` small documents of several kinds for markdown-to-pdf: text, Markdown and
    HTML, two too long to convert (they fail as jobs) and one not text at all (refused at
    submission); with the number of each kind of failure."""
    files = []
    for index in range(count):
        if index in (7, 31):
            name, body = f"long-{index}.txt", "\n\n".join(f"line {n}" for n in range(400))
        elif index == 20:
            files.append(("files", ("blob.bin", b"\xff\xfe\x00\x81" * 64, "text/plain")))
            continue
        elif index % 3 == 0:
            name, body = f"note-{index}.txt", f"plain note number {index}"
        elif index % 3 == 1:
            name, body = f"doc-{index}.md", f"# Title {index}\n\n- item *{index}*"
        else:
            name, body = f"page-{index}.html", f"<h1>Page {index}</h1><p>body</p>"
        files.append(("files", (name, body.encode(), "text/plain")))
    return files, 2, 1


async def submit(api: InProcessApi, key: str, operation: str, files: Any) -> dict[str, Any]:
    answer = await api.post(key, "/api/v1/batches", data={"operation": operation}, files=files)
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def completed(api: InProcessApi, key: str, batch_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = await api.get(key, f"/api/v1/batches/{batch_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if body["status"] == "completed":
            return body
        await anyio.sleep(0.1)
    raise AssertionError(f"batch {batch_id} still {body}")


async def test_a_batch_of_mixed_files_ends_with_right_counts_and_one_webhook(
    api: InProcessApi,
) -> None:
    key = api.key("batch-owner")
    files, failing, refused = mixed_files(50)
    with serve([(200, {}, b"{}")]) as receiver:
        hook = await api.post(
            key, "/v1/webhooks", json={"url": receiver.url, "events": ["batch.completed"]}
        )
        assert hook.status_code == 201, hook.text
        submitted = await submit(api, key, "convert/markdown-to-pdf", files)
        batch_id = submitted["batch_id"]
        documents = submitted["documents"]
        assert len(documents) == 50
        (blob,) = [d for d in documents if d["job_id"] is None]
        assert blob["file_name"] == "blob.bin" and blob["error"]["code"]
        jobs = 50 - refused

        done = await completed(api, key, batch_id)
        assert done["progress"] == {"finished": jobs, "total": jobs}
        assert done["counts"] == {
            "pending": 0,
            "processing": 0,
            "complete": jobs - failing,
            "failed": failing,
            "cancelled": 0,
        }
        await anyio.sleep(1)  # a second event would have come by now
        (event,) = receiver.wait_for(1)
        assert len(receiver.received) == 1
        Webhook(hook.json()["secret"]).verify(event.body, event.headers)
        body = json.loads(event.body)
        assert body["type"] == "batch.completed"
        assert body["data"]["batchId"] == batch_id
        assert body["data"]["counts"] == done["counts"]
        assert body["data"]["total"] == jobs

    long_job = documents[7]["job_id"]
    detail = (await api.get(key, f"/api/v1/jobs/{long_job}")).json()
    assert detail["batch_id"] == batch_id and detail["error"]["code"] == "too_many_pages"
    listed = (await api.get(key, "/api/v1/jobs", params={"batch_id": batch_id})).json()
    assert listed["total"] == jobs
    seen: set[str] = set()
    cursor = None
    while True:
        params = {"limit": 20, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(key, f"/api/v1/batches/{batch_id}/jobs", params=params)).json()
        seen |= {job["job_id"] for job in page["jobs"]}
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert seen == {d["job_id"] for d in documents if d["job_id"]}


async def test_cancel_stops_what_is_left(api: InProcessApi) -> None:
    key = api.key("batch-canceller")
    scan, _ = pdf_with_pages(3, seed=5)  # seconds of Tesseract each: most wait their turn
    files = [("files", (f"scan-{n}.pdf", scan, "application/pdf")) for n in range(8)]
    submitted = await submit(api, key, "ocr/extract/simple", files)
    batch_id = submitted["batch_id"]
    answer = await api.request("DELETE", key, f"/api/v1/batches/{batch_id}")
    assert answer.status_code == 200, answer.text

    done = await completed(api, key, batch_id)
    counts = done["counts"]
    assert counts["pending"] == counts["processing"] == 0
    assert counts["cancelled"] >= 5, counts
    assert counts["cancelled"] + counts["complete"] == 8
    for document in submitted["documents"]:
        job = (await api.get(key, f"/api/v1/jobs/{document['job_id']}")).json()
        assert job["status"] in ("cancelled", "complete")


async def test_another_tenants_batch_is_not_found(api: InProcessApi) -> None:
    owner, stranger = api.key("batch-keeper"), api.key("batch-stranger")
    files = [("files", ("a.txt", b"hello", "text/plain"))]
    batch_id = (await submit(api, owner, "convert/text-to-pdf", files))["batch_id"]
    for method, path in [
        ("GET", f"/api/v1/batches/{batch_id}"),
        ("GET", f"/api/v1/batches/{batch_id}/jobs"),
        ("DELETE", f"/api/v1/batches/{batch_id}"),
    ]:
        answer = await api.request(method, stranger, path)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "batch_not_found"
    listed = await api.get(stranger, "/api/v1/jobs", params={"batch_id": batch_id})
    assert listed.json()["total"] == 0


async def test_too_many_files_are_refused_with_the_limit(api: InProcessApi) -> None:
    key = api.key("batch-greedy")
    files = [("files", (f"{n}.txt", b"x", "text/plain")) for n in range(MAX_FILES + 1)]
    answer = await api.post(
        key, "/api/v1/batches", data={"operation": "convert/text-to-pdf"}, files=files
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "too_many_files"
    assert str(MAX_FILES) in error["message"] and "61" in error["message"]
    listed = await api.get(key, "/api/v1/jobs")
    assert listed.json()["total"] == 0


async def test_a_repeated_batch_with_its_key_is_the_same_batch(api: InProcessApi) -> None:
    """Through the documented Python client."""
    key = api.key("batch-repeater")
    client = AsyncClient("http://testserver", key)
    await client.http.aclose()
    client.http = api.client
    documents = [f"# {n}".encode() for n in range(3)]
    first = await client.submit_batch(documents, "convert/markdown-to-pdf", idempotency_key="k1")
    again = await client.submit_batch(documents, "convert/markdown-to-pdf", idempotency_key="k1")
    assert first.batch_id == again.batch_id
    assert len(first.documents) == 3 and again.documents == []  # nothing submitted again
    assert (await api.get(key, "/api/v1/jobs")).json()["total"] == 3
    other = await client.submit_batch(documents, "convert/text-to-pdf", idempotency_key="k2")
    assert other.batch_id != first.batch_id
    followed = await client.batch(first.batch_id)
    assert followed.progress.total == 3


async def test_documents_by_reference_join_the_batch(api: InProcessApi) -> None:
    key = api.key("batch-referrer")
    answer = await api.post(
        key,
        "/api/v1/batches",
        data={"operation": "convert/text-to-pdf", "source_urls": ["https://127.0.0.1/a.txt"]},
        files=[("files", ("a.txt", b"hello", "text/plain"))],
    )
    assert answer.status_code == 202, answer.text
    uploaded, referenced = answer.json()["documents"]
    assert uploaded["job_id"] and referenced["job_id"] is None
    assert referenced["file_name"] == "https://127.0.0.1/a.txt"
    assert referenced["error"]["code"] in ("unsafe_source_url", "source_unavailable")
    assert answer.json()["progress"]["total"] == 1
