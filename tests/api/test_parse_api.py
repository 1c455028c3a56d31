"""The parse API (`/v1`): its own client, idempotency, templates, limits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import requests

from tests.docs import INVOICE, INVOICE_TEMPLATE, invoice_pdf, rasterized

DOCUMENTED_CLIENT = """
import requests
import time
import os
API_KEY = os.getenv('PARSELYZE_API_KEY')
BASE_URL = '{base}'

def process_async():
    # Submit job
    with open('{path}', 'rb') as file:
        files = {{'file': file}}
        data = {{'templateId': '{template_id}'}}
        response = requests.post(
            f"{{BASE_URL}}/v1/documents/parse/async",
            headers={{"x-api-key": API_KEY}},
            files=files,
            data=data
        )
    job = response.json()
    job_id = job['jobId']
    print(f"Job submitted: {{job_id}}")
    # Poll for completion
    while True:
        response = requests.get(
            f"{{BASE_URL}}/v1/jobs/{{job_id}}",
            headers={{"x-api-key": API_KEY}}
        )
        result = response.json()
        status = result['status']
        if status == 'completed':
            print("Job completed:", result['result'])
            break
        elif status == 'failed':
            print("Job failed:", result['error'])
            break
        print(f"Status: {{status}}, waiting...")
        time.sleep(5)

process_async()
"""


def headers(key: str) -> dict[str, str]:
    return {"x-api-key": key}


def create_template(server, key, body=INVOICE_TEMPLATE) -> str:
    response = requests.post(f"{server.base}/v1/templates", headers=headers(key), json=body)
    assert response.status_code == 201, response.text
    return response.json()["templateId"]


@pytest.mark.parametrize("scanned", [False, True], ids=["text-layer", "scanned"])
def test_documented_client_prints_the_invoice_fields(
    server, api_key, tmp_path: Path, scanned
) -> None:
    template_id = create_template(server, api_key)
    pdf = invoice_pdf()
    document = tmp_path / ("invoice.png" if scanned else "invoice.pdf")
    document.write_bytes(rasterized(pdf) if scanned else pdf)
    script = tmp_path / "client.py"
    script.write_text(
        DOCUMENTED_CLIENT.format(base=server.base, path=document, template_id=template_id)
    )

    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        env={"PARSELYZE_API_KEY": api_key, "PATH": "/usr/bin"},
    )

    assert run.returncode == 0, run.stderr
    expected = {
        "invoice": {
            "number": INVOICE["number"],
            "date": INVOICE["iso_date"],
            "total": INVOICE["total"],
            "vendor": INVOICE["vendor"],
        }
    }
    assert f"Job completed: {expected}" in run.stdout, run.stdout


def test_same_file_twice_returns_the_original_job(server, tmp_path) -> None:
    first_key, other_key = server.key("dup-a"), server.key("dup-b")
    template_id = create_template(server, first_key)
    pdf = invoice_pdf(number="INV-DUP-7")

    def submit(key, template):
        return requests.post(
            f"{server.base}/v1/documents/parse/async",
            headers=headers(key),
            files={"file": ("a.pdf", pdf, "application/pdf")},
            data={"templateId": template},
        )

    first = submit(first_key, template_id).json()
    assert first["message"] == "Job queued for processing"
    again = submit(first_key, template_id).json()
    assert again["jobId"] == first["jobId"] and again["createdAt"] == first["createdAt"]
    assert again["message"] == "This document has already been submitted. Returning existing job."
    other = submit(other_key, create_template(server, other_key)).json()
    assert other["jobId"] != first["jobId"]
    assert other["message"] == "Job queued for processing"
    keyed = [
        requests.post(
            f"{server.base}/api/v1/convert/text-to-pdf?async=true",
            headers={**headers(first_key), "Idempotency-Key": "order-42"},
            data={"content": text},
        )
        for text in ("first body", "first body", "second body")
    ]
    assert keyed[0].status_code == 202
    assert keyed[1].json()["job_id"] == keyed[0].json()["job_id"]
    # The same key with another document is the client's mistake, named, not a silent repeat.
    assert keyed[2].status_code == 422
    error = keyed[2].json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert keyed[0].json()["job_id"] in error["message"]
    other_parameters = requests.post(
        f"{server.base}/api/v1/convert/html-to-pdf?async=true",
        headers={**headers(first_key), "Idempotency-Key": "order-42"},
        data={"content": "first body"},
    )
    assert other_parameters.status_code == 422


@pytest.mark.anyio
async def test_jobs_from_either_family_read_in_both_shapes(api) -> None:
    key = api.key("both-shapes")
    submitted = await api.post(
        key, "/api/v1/convert/text-to-pdf?async=true", data={"content": "both shapes"}
    )
    job_id = submitted.json()["job_id"]
    for _ in range(600):
        view = (await api.get(key, f"/v1/jobs/{job_id}")).json()
        if view["status"] == "completed":
            break
        await anyio.sleep(0.1)
    assert view["status"] == "completed"
    assert view["jobId"] == job_id and view["attempts"] == 1 and view["pageCount"] == 1
    assert (await api.get(key, f"/api/v1/jobs/{job_id}")).json()["status"] == "complete"


@pytest.mark.anyio
async def test_templates_are_validated_and_tenant_scoped(api) -> None:
    owner, stranger = api.key("tpl-owner"), api.key("tpl-stranger")
    created = await api.post(owner, "/v1/templates", json=INVOICE_TEMPLATE)
    assert created.status_code == 201, created.text
    url = f"/v1/templates/{created.json()['templateId']}"
    assert (await api.get(owner, url)).json()["name"] == "invoice"
    for method in ("GET", "DELETE"):
        assert (await api.request(method, stranger, url)).status_code == 404
    assert (await api.get(stranger, "/v1/templates")).json()["total"] == 0
    bad = [
        {"name": "x", "fields": []},
        {"name": "x", "fields": [{"name": "invoice..number"}]},
        {"name": "x", "fields": [{"name": "a", "type": "money"}]},
        {"name": "x", "fields": [{"name": "a"}, {"name": "a.b"}]},
        {"name": "x", "fields": [{"name": "a", "regex": "("}]},
        {"name": "x", "fields": [{"name": "a"}], "color": "red"},
    ]
    for body in bad:
        response = await api.post(owner, "/v1/templates", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "invalid_parameters"
    missing = await api.post(
        owner,
        "/v1/documents/parse/async",
        files={"file": ("a.pdf", invoice_pdf(), "application/pdf")},
        data={"templateId": "00000000-0000-0000-0000-000000000000"},
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "template_not_found"
    no_template = await api.post(
        owner,
        "/v1/documents/parse/async",
        files={"file": ("a.pdf", invoice_pdf(), "application/pdf")},
    )
    assert no_template.status_code == 400
    replaced = await api.request("PUT", owner, url, json={**INVOICE_TEMPLATE, "name": "inv2"})
    assert replaced.json()["name"] == "inv2"
    assert (await api.request("DELETE", owner, url)).status_code == 204
    assert (await api.get(owner, url)).status_code == 404


@pytest.mark.anyio
async def test_free_plan_gets_429_on_the_11th_request(api) -> None:
    key = api.key("freeloader", plan="free")
    answers = [
        await api.post(
            key, "/api/v1/convert/text-to-pdf?async=true", data={"content": f"request {n}"}
        )
        for n in range(11)
    ]
    assert [a.status_code for a in answers[:10]] == [202] * 10
    assert answers[9].headers["X-RateLimit-Limit"] == "10"
    assert answers[9].headers["X-RateLimit-Remaining"] == "0"
    limited = answers[10]
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Reading jobs is not submission: it stays allowed.
    assert (await api.get(key, "/api/v1/jobs")).status_code == 200
