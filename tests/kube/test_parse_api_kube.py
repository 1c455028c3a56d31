"""the parse API's guarantees on the rig: idempotency, retries decided by the operator through the
lifecycle, and webhooks delivered by the operator through the same code as embedded mode.

Claude cannot run here: a local HTTP server speaking the Anthropic Messages API stands in
for it (``tests.receivers``); runner pods reach it on loopback through the rig's kubelet.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from docjobs.kube.client import KubeError
from docjobs.storage.base import template_key
from tests.docs import INVOICE_TEMPLATE, invoice_pdf
from tests.receivers import claude_overloaded, claude_tool_answer, serve

BACKOFF = 2.0
ANSWER = {
    "invoice": {
        "number": "INV-K8S-1",
        "date": "2025-05-26",
        "total": 1250.75,
        "vendor": "Acme Corporation",
    }
}


@pytest.fixture
def claude():
    with serve([(200, {}, claude_tool_answer(ANSWER))]) as standin:
        yield standin


@pytest.fixture
def api_env() -> dict[str, str]:
    return {
        "DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
        "DOCJOBS_JOBS__RETRY__INITIAL_BACKOFF_SECONDS": str(BACKOFF),
    }


@pytest.fixture
def operator_env(claude) -> dict[str, str]:
    runner_env = {"DOCJOBS_LLM__BASE_URL": claude.url, "DOCJOBS_LLM__API_KEY": "standin-key"}
    return {
        "DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
        "DOCJOBS_WEBHOOKS__INITIAL_BACKOFF_SECONDS": "0.2",
        "DOCJOBS_OPERATOR__RUNNER_ENV": json.dumps(runner_env),
    }


def headers(key: str) -> dict[str, str]:
    return {"x-api-key": key}


@pytest.fixture
def tenant(kube_server, operator):
    key = kube_server.key("acme")
    template = {**INVOICE_TEMPLATE, "engine": "llm"}
    created = requests.post(f"{kube_server.base}/v1/templates", headers=headers(key), json=template)
    assert created.status_code == 201, created.text
    return key, created.json()["templateId"]


def submit(server, key, template_id, pdf):
    response = requests.post(
        f"{server.base}/v1/documents/parse/async",
        headers=headers(key),
        files={"file": ("invoice.pdf", pdf, "application/pdf")},
        data={"templateId": template_id},
    )
    assert response.status_code == 202, response.text
    return response.json()


def follow(server, key, job_id, operator, timeout=180):
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        operator.check_alive()
        view = requests.get(f"{server.base}/v1/jobs/{job_id}", headers=headers(key)).json()
        if not seen or seen[-1] != view["status"]:
            seen.append(view["status"])
        if view["status"] in ("completed", "failed", "cancelled"):
            return view, seen
        time.sleep(0.2)
    raise AssertionError(f"{job_id} still {seen}")


def test_duplicate_submission_returns_the_original_job(kube_server, tenant, operator) -> None:
    key, template_id = tenant
    pdf = invoice_pdf(number="INV-K8S-DUP")
    first = submit(kube_server, key, template_id, pdf)
    again = submit(kube_server, key, template_id, pdf)
    assert again["jobId"] == first["jobId"]
    assert again["message"] == "This document has already been submitted. Returning existing job."
    view, _ = follow(kube_server, key, first["jobId"], operator)
    assert view["status"] == "completed" and view["result"] == ANSWER


def test_a_documentjob_names_its_template_by_version_only(
    kube_server, tenant, operator, kube, namespace, s3, cluster
) -> None:
    key, template_id = tenant
    job = submit(kube_server, key, template_id, invoice_pdf(number="INV-K8S-VERSION"))
    name = job["jobId"].replace("_", "-")
    resource = kube.get(f"/apis/docjobs.io/v1alpha1/namespaces/{namespace}/documentjobs/{name}")
    operation = resource["spec"]["operation"]
    assert set(operation) == {"kind", "templateId", "templateVersion", "engine", "language", "ocr"}
    assert operation["templateId"] == template_id
    # The version the runner reads: stored by the API at submission, beside the tenant's jobs.
    stored = s3.get_object(
        cluster.s3["bucket"], template_key("acme", template_id, operation["templateVersion"])
    )
    try:
        assert json.loads(stored.read())["fields"][0]["name"] == "invoice.number"
    finally:
        stored.close()
        stored.release_conn()
    view, _ = follow(kube_server, key, job["jobId"], operator)
    assert view["status"] == "completed" and view["result"] == ANSWER


def test_a_sync_parse_reads_the_template_version_the_api_stored(kube_server, operator) -> None:
    key = kube_server.key("sync-parse")
    created = requests.post(
        f"{kube_server.base}/v1/templates", headers=headers(key), json=INVOICE_TEMPLATE
    )
    assert created.status_code == 201, created.text
    answer = requests.post(
        f"{kube_server.base}/v1/documents/parse",
        headers=headers(key),
        files={"file": ("invoice.pdf", invoice_pdf(number="INV-K8S-SYNC"), "application/pdf")},
        data={"templateId": created.json()["templateId"]},
        timeout=180,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "completed", answer.text
    assert answer.json()["result"]["invoice"]["number"] == "INV-K8S-SYNC"


def test_transient_failure_retries_after_the_backoff(kube_server, tenant, operator, claude) -> None:
    key, template_id = tenant
    claude.replies[:] = [(529, {}, claude_overloaded()), (200, {}, claude_tool_answer(ANSWER))]
    job = submit(kube_server, key, template_id, invoice_pdf(number="INV-K8S-RETRY"))
    view, seen = follow(kube_server, key, job["jobId"], operator)
    assert view["status"] == "completed" and view["attempts"] == 2, view
    assert "retrying" in seen
    first, second = claude.received[:2]
    assert second.at - first.at >= BACKOFF


def test_permanent_failure_fails_at_once(kube_server, tenant, operator, claude) -> None:
    key, template_id = tenant
    claude.replies[:] = [(200, {}, claude_tool_answer({"invoice": {"total": "lots"}}))]
    job = submit(kube_server, key, template_id, invoice_pdf(number="INV-K8S-BAD"))
    view, _ = follow(kube_server, key, job["jobId"], operator)
    assert view["status"] == "failed" and view["attempts"] == 1
    assert len(claude.received) == 1


def test_operator_delivers_signed_webhooks_and_retries(kube_server, tenant, operator) -> None:
    key, template_id = tenant
    with serve([(500, {}, b"{}"), (200, {}, b"{}")]) as receiver:
        created = requests.post(
            f"{kube_server.base}/v1/webhooks",
            headers=headers(key),
            json={"url": receiver.url + "/hook"},
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        job = submit(kube_server, key, template_id, invoice_pdf(number="INV-K8S-HOOK"))
        first, second = receiver.wait_for(2, timeout=180)
        event = Webhook(secret).verify(second.body, second.headers)
        assert event["type"] == "job.completed" and event["data"]["jobId"] == job["jobId"]
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = requests.get(
            f"{kube_server.base}/v1/jobs/{job['jobId']}", headers=headers(key)
        ).json()
        if view["webhooks"]:
            break
        time.sleep(0.2)
    (delivery,) = view["webhooks"]
    assert delivery["delivered"] is True
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 200]


def test_template_applied_like_gitops_is_usable(kube_server, operator, kube, namespace) -> None:
    key = kube_server.key("gitops")
    kube.create(
        f"/apis/docjobs.io/v1alpha1/namespaces/{namespace}/documenttemplates",
        {
            "apiVersion": "docjobs.io/v1alpha1",
            "kind": "DocumentTemplate",
            "metadata": {"name": "invoice", "labels": {"docjobs.io/tenant": "gitops"}},
            "spec": {**INVOICE_TEMPLATE, "tenant": "gitops"},
        },
    )
    listed = requests.get(f"{kube_server.base}/v1/templates", headers=headers(key)).json()
    assert [t["templateId"] for t in listed["templates"]] == ["invoice"]
    job = submit(kube_server, key, "invoice", invoice_pdf(number="INV-GITOPS-9"))
    view, _ = follow(kube_server, key, job["jobId"], operator)
    assert view["status"] == "completed"
    assert view["result"]["invoice"]["number"] == "INV-GITOPS-9"
    assert view["result"]["invoice"]["total"] == 1250.75


def test_invalid_template_resource_is_rejected_by_the_api_server(kube, namespace, crd) -> None:
    with pytest.raises(KubeError) as refused:
        kube.create(
            f"/apis/docjobs.io/v1alpha1/namespaces/{namespace}/documenttemplates",
            {
                "apiVersion": "docjobs.io/v1alpha1",
                "kind": "DocumentTemplate",
                "metadata": {"name": "broken"},
                "spec": {
                    "name": "x",
                    "tenant": "gitops",
                    "fields": [{"name": "a", "type": "money"}],
                },
            },
        )
    assert refused.value.status == 422


def test_template_crd_is_current() -> None:
    from pathlib import Path

    from docjobs.kube.crd import render_template_crd

    crd = Path(__file__).resolve().parents[2] / "crds" / "documenttemplate.yaml"
    assert crd.read_text() == render_template_crd(), (
        "run: docjobs crd --template > crds/documenttemplate.yaml"
    )
