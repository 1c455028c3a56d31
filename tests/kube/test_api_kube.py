"""The API's kubernetes backend against the rig's real kube-apiserver and MinIO.

No operator runs here: tests play its part by patching the DocumentJob's status subresource,
so they pin down the API's side of the contract on its own.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import time

import pytest
import requests

from docjobs.backends.kubernetes.templates import ResourceTemplateStore
from docjobs.domain.idempotency import DUPLICATE_MESSAGE
from docjobs.kube.client import KubeClient
from docjobs.templates.schema import TemplateField, TemplateSpec
from docjobs.templates.store import TemplateBounds, TemplateQuotaExceeded
from tests.conftest import BIN, Server
from tests.docs import pdf_with_pages
from tests.kube.helpers import api_status, documentjob, now, patch_status, sha256
from tests.rig.fixtures import wait_for

OCR = "/api/v1/ocr/extract/simple?async=true"


def submit(server, key: str, pdf: bytes, name: str = "scan.pdf") -> requests.Response:
    return requests.post(
        server.base + OCR,
        headers={"X-API-Key": key},
        files={"file": (name, pdf, "application/pdf")},
        data={"output": "simple"},
        timeout=30,
    )


def test_submission_creates_one_documentjob_per_document_and_tenant(
    kube_server, kube, s3, cluster, namespace
) -> None:
    acme, globex = kube_server.key("acme"), kube_server.key("globex")
    pdf, _ = pdf_with_pages(2, seed=3)

    first = submit(kube_server, acme, pdf)
    assert first.status_code == 202, first.text
    job_id = first.json()["job_id"]
    assert re.fullmatch(r"job_[0-9a-f]{24}", job_id)

    resource = documentjob(kube, namespace, job_id)
    assert resource["metadata"]["labels"]["docjobs.io/tenant"] == "acme"
    spec = resource["spec"]
    assert spec["operation"]["kind"] == "ocr.simple"
    assert spec["tenant"] == "acme" and spec["jobId"] == job_id
    ref = spec["input"]
    assert (ref["sha256"], ref["size"], ref["pageCount"]) == (sha256(pdf), len(pdf), 2)
    assert ref["bucket"] == cluster.s3["bucket"]
    assert ref["key"].startswith(f"acme/{job_id}/input")
    assert s3.get_object(ref["bucket"], ref["key"]).read() == pdf

    again = submit(kube_server, acme, pdf, name="same-bytes-other-name.pdf")
    assert again.status_code == 202
    assert again.json()["job_id"] == job_id
    assert again.json()["message"] == DUPLICATE_MESSAGE
    stored = list(s3.list_objects(cluster.s3["bucket"], prefix=f"acme/{job_id}/", recursive=True))
    assert [o.object_name for o in stored] == [ref["key"]], "a duplicate must not keep an input"

    other = submit(kube_server, globex, pdf)
    assert other.status_code == 202
    assert other.json()["job_id"] != job_id
    items = kube.get(f"/apis/docjobs.io/v1alpha1/namespaces/{namespace}/documentjobs")["items"]
    assert sorted(i["spec"]["tenant"] for i in items) == ["acme", "globex"]


def test_status_follows_the_resource_and_the_result_streams_from_s3(
    kube_server, kube, s3, cluster, namespace
) -> None:
    key = kube_server.key("acme")
    pdf, _ = pdf_with_pages(1, seed=4)
    job_id = submit(kube_server, key, pdf).json()["job_id"]
    assert (
        requests.get(f"{kube_server.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}).json()[
            "status"
        ]
        == "pending"
    )

    processing = {"phase": "Processing", "attempts": 1, "startedAt": now()}
    patch_status(kube, namespace, job_id, processing)
    api_status(kube_server, key, job_id, "processing")
    early = requests.get(
        f"{kube_server.base}/api/v1/jobs/{job_id}/result", headers={"X-API-Key": key}
    )
    assert early.status_code == 409

    result = json.dumps({"data": {"text": "hello from the operator", "word_count": 4}}).encode()
    result_key = f"acme/{job_id}/result.json"
    bucket = cluster.s3["bucket"]
    s3.put_object(bucket, result_key, io.BytesIO(result), len(result), "application/json")
    patch_status(
        kube,
        namespace,
        job_id,
        {
            "phase": "Complete",
            "completedAt": now(),
            "pageCount": 1,
            "result": {"key": result_key, "contentType": "application/json", "size": len(result)},
        },
    )
    done = api_status(kube_server, key, job_id, "complete")
    assert done["job_id"] == job_id
    response = requests.get(
        f"{kube_server.base}/api/v1/jobs/{job_id}/result", headers={"X-API-Key": key}
    )
    assert response.status_code == 200
    assert response.content == result
    # the parse API's family reads the same job, in its own words.
    v1 = requests.get(f"{kube_server.base}/v1/jobs/{job_id}", headers={"x-api-key": key}).json()
    assert v1["status"] == "completed"
    assert v1["webhooks"] == []


def test_cancel_sets_spec_cancel_and_a_deleted_resource_is_gone(
    kube_server, kube, namespace
) -> None:
    key = kube_server.key("acme")
    job_id = submit(kube_server, key, pdf_with_pages(1, seed=5)[0]).json()["job_id"]
    url = f"{kube_server.base}/api/v1/jobs/{job_id}"

    assert requests.delete(url, headers={"X-API-Key": key}).status_code == 204
    assert documentjob(kube, namespace, job_id)["spec"]["cancel"] is True
    patch_status(kube, namespace, job_id, {"phase": "Cancelled", "completedAt": now()})
    api_status(kube_server, key, job_id, "cancelled")

    # The operator's TTL deletes finished DocumentJobs: the job is then unknown.
    name = job_id.replace("_", "-")
    kube.delete(f"/apis/docjobs.io/v1alpha1/namespaces/{namespace}/documentjobs/{name}")

    def gone() -> bool:
        return requests.get(url, headers={"X-API-Key": key}).status_code == 404

    wait_for(gone, 20, 0.1, what="the deleted job to read 404")


def test_polling_a_job_costs_the_api_server_no_get(kube_server, cluster, namespace) -> None:
    key = kube_server.key("acme")
    job_id = submit(kube_server, key, pdf_with_pages(1, seed=6)[0]).json()["job_id"]
    admin = KubeClient.from_environment(kubeconfig=str(cluster.kubeconfig))
    url = f"{kube_server.base}/api/v1/jobs/{job_id}"
    session = requests.Session()
    assert session.get(url, headers={"X-API-Key": key}).status_code == 200

    before = documentjob_gets(admin)
    for _ in range(200):
        assert session.get(url, headers={"X-API-Key": key}).status_code == 200
    after = documentjob_gets(admin)
    assert after == before, f"{after - before} GETs of documentjobs while polling"

    # The measurement sees GETs: one made on purpose shows up.
    name = job_id.replace("_", "-")
    admin.get(f"/apis/docjobs.io/v1alpha1/namespaces/{namespace}/documentjobs/{name}")
    assert documentjob_gets(admin) == after + 1


def documentjob_gets(admin: KubeClient) -> int:
    """GET requests for documentjobs the API server has served, from its own /metrics."""
    total = 0
    for line in admin.get_text("/metrics").splitlines():
        if (
            line.startswith("apiserver_request_total{")
            and 'resource="documentjobs"' in line
            and 'verb="GET"' in line
            and 'subresource=""' in line
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_tenants_are_isolated_and_keys_stored_only_as_hashes(kube_server, kube, namespace) -> None:
    acme, globex = kube_server.key("acme"), kube_server.key("globex")
    job_id = submit(kube_server, acme, pdf_with_pages(1, seed=8)[0]).json()["job_id"]
    base = f"{kube_server.base}/api/v1/jobs"
    stranger = {"X-API-Key": globex}
    assert requests.get(f"{base}/{job_id}", headers=stranger).status_code == 404
    assert requests.get(f"{base}/{job_id}/result", headers=stranger).status_code == 404
    assert requests.delete(f"{base}/{job_id}", headers=stranger).status_code == 404
    assert requests.get(base, headers=stranger).json()["total"] == 0
    assert requests.get(base, headers={"X-API-Key": acme}).json()["total"] == 1
    assert documentjob(kube, namespace, job_id)["spec"]["cancel"] is False

    secret = kube.get(f"/api/v1/namespaces/{namespace}/secrets/docjobs-api-keys")
    raw = json.dumps(secret)
    entries = {k: json.loads(base64.b64decode(v)) for k, v in secret["data"].items()}
    for key in (acme, globex):
        key_id = key.split("_")[1]
        assert key not in raw and key.split("_", 2)[2] not in raw
        assert entries[key_id]["hash"] == hashlib.sha256(key.encode()).hexdigest()
        assert entries[key_id]["revoked_at"] is None
    assert {e["tenant"] for e in entries.values()} == {"acme", "globex"}


def test_revoked_key_is_refused_and_keys_list_shows_it(kube_server, namespace) -> None:
    key = kube_server.key("acme")
    key_id = key.split("_")[1]
    jobs = f"{kube_server.base}/api/v1/jobs"
    assert requests.get(jobs, headers={"X-API-Key": key}).status_code == 200
    cli = [str(BIN / "docjobs"), "keys"]
    flags = ["--backend", "kubernetes", "--namespace", namespace]
    run_env = {**os.environ, **kube_server.env}
    subprocess.run([*cli, "revoke", key_id, *flags], check=True, env=run_env)
    listed = subprocess.run(
        [*cli, "list", *flags], check=True, env=run_env, capture_output=True, text=True
    ).stdout
    assert re.search(rf"^{key_id}  acme  business  revoked ", listed, re.M), listed

    wait_for(
        lambda: requests.get(jobs, headers={"X-API-Key": key}).status_code == 401,
        10,
        0.1,
        what="the revoked key to be refused",
    )


def test_templates_and_webhook_endpoints_live_in_the_namespace(
    kube_server, kube, namespace
) -> None:
    owner, stranger = kube_server.key("tpl-owner"), kube_server.key("tpl-stranger")
    body = {"name": "invoice", "fields": [{"name": "number"}, {"name": "total"}]}
    created = requests.post(
        f"{kube_server.base}/v1/templates", headers={"x-api-key": owner}, json=body
    )
    assert created.status_code == 201, created.text
    template_id = created.json()["templateId"]
    url = f"{kube_server.base}/v1/templates/{template_id}"
    assert requests.get(url, headers={"x-api-key": owner}).json()["name"] == "invoice"
    assert requests.get(url, headers={"x-api-key": stranger}).status_code == 404
    stored = kube.get(
        f"/apis/docjobs.io/v1alpha1/namespaces/{namespace}/documenttemplates/{template_id}"
    )
    assert stored["spec"]["tenant"] == "tpl-owner" and stored["spec"]["name"] == "invoice"
    renamed = requests.put(url, headers={"x-api-key": owner}, json={**body, "name": "bill"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "bill"
    assert requests.put(url, headers={"x-api-key": stranger}, json=body).status_code == 404
    assert requests.delete(url, headers={"x-api-key": owner}).status_code == 204
    assert requests.get(url, headers={"x-api-key": owner}).status_code == 404

    hooks = f"{kube_server.base}/v1/webhooks"
    refused = requests.post(hooks, headers={"x-api-key": owner}, json={"url": "http://127.0.0.1/"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsafe_webhook_url"
    made = requests.post(
        hooks, headers={"x-api-key": owner}, json={"url": "https://hooks.example.com/docjobs"}
    )
    assert made.status_code == 201, made.text
    endpoint = made.json()
    secrets = kube.get(f"/api/v1/namespaces/{namespace}/secrets/docjobs-webhooks")["data"]
    assert f"endpoint.{endpoint['id']}" in secrets
    assert [
        e["id"] for e in requests.get(hooks, headers={"x-api-key": owner}).json()["webhooks"]
    ] == [endpoint["id"]]
    assert requests.get(hooks, headers={"x-api-key": stranger}).json()["total"] == 0
    assert (
        requests.delete(f"{hooks}/{endpoint['id']}", headers={"x-api-key": stranger}).status_code
        == 404
    )
    assert (
        requests.delete(f"{hooks}/{endpoint['id']}", headers={"x-api-key": owner}).status_code
        == 204
    )
    assert requests.get(hooks).status_code == 401


def test_jobs_survive_an_api_restart(kube_server) -> None:
    key = kube_server.key("acme")
    job_id = submit(kube_server, key, pdf_with_pages(1, seed=9)[0]).json()["job_id"]
    kube_server.stop()
    kube_server.start()
    response = requests.get(f"{kube_server.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key})
    assert response.status_code == 200
    assert response.json()["status"] == "pending"


def test_the_cache_resumes_ended_watches_without_listing_again(
    cluster, namespace, crd, kube, tmp_path
) -> None:
    server = Server(
        tmp_path / "data",
        env={**cluster.env, "DOCJOBS_KUBERNETES__WATCH_TIMEOUT_SECONDS": "1"},
        args=["--backend", "kubernetes", "--namespace", namespace],
    ).start()
    try:
        key = server.key("acme")
        job_id = submit(server, key, pdf_with_pages(1, seed=10)[0]).json()["job_id"]
        time.sleep(3.5)  # the server has ended several watches by now
        patch_status(kube, namespace, job_id, {"phase": "Processing", "attempts": 1})
        api_status(server, key, job_id, "processing", timeout=10)
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "listing again" not in log and "retrying" not in log, log[-3000:]


def test_templates_are_bounded_in_size_and_number(kube_server, kube, namespace) -> None:
    key = kube_server.key("tpl-bounded")
    # Over 200 KB of fields, labels and descriptions: more than a runner's environment holds.
    fields = [
        {
            "name": f"field_{n}",
            "description": "d" * 500,
            "labels": [f"{n}-{label}".ljust(100, "l") for label in range(15)],
        }
        for n in range(100)
    ]
    refused = requests.post(
        f"{kube_server.base}/v1/templates",
        headers={"x-api-key": key},
        json={"name": "huge", "fields": fields},
    )
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "template_too_large"

    store = ResourceTemplateStore(kube, namespace, TemplateBounds(max_per_tenant=2))
    spec = TemplateSpec(name="small", fields=[TemplateField(name="number")])
    store.create("tpl-quota", spec)
    store.create("tpl-quota", spec)
    with pytest.raises(TemplateQuotaExceeded):
        store.create("tpl-quota", spec)
    assert len(store.list_templates("tpl-quota")) == 2
