"""Parse jobs name their template by id and content version: the template is stored once per
version, not once per job, and a queued job runs with the version it was submitted with.

A server started with no runner workers (``runner.concurrency=0``) keeps its jobs queued, so
what a submission stores, and a template change while a job waits, can be seen exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from docjobs.api.app import create_app
from tests.docs import INVOICE, INVOICE_TEMPLATE, invoice_pdf

from .conftest import InProcessApi, app_settings, running

pytestmark = pytest.mark.anyio

# Long descriptions and labels on fields the invoice lacks: a template near the 64 KB cap.
LARGE_TEMPLATE: dict[str, Any] = {
    **INVOICE_TEMPLATE,
    "fields": [
        *INVOICE_TEMPLATE["fields"],
        *(
            {
                "name": f"extra.field_{n}",
                "description": "d" * 500,
                "labels": [f"{n}-{label}".ljust(100, "l") for label in range(15)],
            }
            for n in range(27)
        ),
    ],
}
INVOICE_RESULT = {
    "number": INVOICE["number"],
    "date": INVOICE["iso_date"],
    "total": INVOICE["total"],
    "vendor": INVOICE["vendor"],
}


def tree_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


async def submit(api: InProcessApi, key: str, template_id: str, pdf: bytes) -> dict[str, Any]:
    response = await api.post(
        key,
        "/v1/documents/parse/async",
        files={"file": ("invoice.pdf", pdf, "application/pdf")},
        data={"templateId": template_id},
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_five_parse_jobs_store_their_template_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    queue_only = app_settings(data, runner={"concurrency": 0})
    template_bytes = len(json.dumps(LARGE_TEMPLATE))
    assert 55 * 1024 < template_bytes < 64 * 1024
    async with running(create_app(queue_only)) as api:
        key = api.key("versions-size")
        created = await api.post(key, "/v1/templates", json=LARGE_TEMPLATE)
        assert created.status_code == 201, created.text
        template_id = created.json()["templateId"]
    before = tree_size(data)

    documents = [invoice_pdf(number=f"INV-SIZE-{n}") for n in range(5)]
    async with running(create_app(queue_only)) as api:
        jobs = {(await submit(api, key, template_id, pdf))["jobId"] for pdf in documents}
    assert len(jobs) == 5

    # Besides the five documents themselves: one copy of the template, not five.
    stored = tree_size(data) - before - sum(len(pdf) for pdf in documents)
    assert template_bytes * 0.8 < stored < 2 * template_bytes, (stored, template_bytes)


async def test_a_queued_job_runs_with_the_template_it_was_submitted_with(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    pdf = invoice_pdf()
    async with running(create_app(app_settings(data, runner={"concurrency": 0}))) as api:
        key = api.key("versions-update")
        created = await api.post(key, "/v1/templates", json=INVOICE_TEMPLATE)
        template_id = created.json()["templateId"]
        queued = await submit(api, key, template_id, pdf)
        twin = await submit(api, key, template_id, pdf)
        assert twin["jobId"] == queued["jobId"]  # same document, same template version
        # While the job waits, the template is changed to read one other field.
        changed = {
            "name": "supplier",
            "engine": "rules",
            "fields": [{"name": "supplier.name", "labels": ["Vendor"]}],
        }
        replaced = await api.request("PUT", key, f"/v1/templates/{template_id}", json=changed)
        assert replaced.status_code == 200, replaced.text

    async with running(create_app(app_settings(data))) as api:
        # The same document with the changed template is another job, with its own answer.
        again = await submit(api, key, template_id, pdf)
        assert again["jobId"] != queued["jobId"]
        for job_id in (queued["jobId"], again["jobId"]):
            await api.wait_for(key, job_id)
        first = (await api.get(key, f"/v1/jobs/{queued['jobId']}")).json()
        assert first["status"] == "completed", first
        assert first["result"] == {"invoice": INVOICE_RESULT}
        second = (await api.get(key, f"/v1/jobs/{again['jobId']}")).json()
        assert second["status"] == "completed", second
        assert second["result"] == {"supplier": {"name": INVOICE["vendor"]}}
