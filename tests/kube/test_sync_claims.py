"""Sync requests in kubernetes mode on the API's warm workers, under a claim the operator
honours and takes over once it lapses: on the rig, with the real operator and MinIO. How
the operator and the claims decide is tested in process (``tests/unit/test_claimed_jobs.py``);
here what needs a real API process, operator and cluster."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pytest
import requests
from minio import Minio
from standardwebhooks.webhooks import Webhook

from docjobs.kube.claims import CLAIM_ANNOTATION
from docjobs.kube.client import KubeClient
from docjobs.kube.paths import documentjobs_path, jobs_path
from docjobs.kube.resources import LABEL_JOB, resource_name
from docjobs.storage.base import outcome_key
from tests.conftest import Server
from tests.docs import INVOICE_TEMPLATE, pdf_with_pages
from tests.kube.helpers import documentjob
from tests.receivers import serve
from tests.rig.fixtures import Cluster, wait_for

from .conftest import Operator

CLAIM_SECONDS = 3
WEBHOOKS = {"DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true"}
OCR = "/api/v1/ocr/extract/simple"
HTML = "<html><body><h1>Invoice 1</h1><p>One page.</p></body></html>"


@pytest.fixture
def api_env() -> dict[str, str]:
    return {"DOCJOBS_KUBERNETES__CLAIM_SECONDS": str(CLAIM_SECONDS)}


def runner_jobs(kube: KubeClient, ns: str) -> list[dict[str, Any]]:
    return kube.items(jobs_path(ns))


def runner_pods(kube: KubeClient, ns: str) -> list[dict[str, Any]]:
    return [
        pod
        for pod in kube.items(f"/api/v1/namespaces/{ns}/pods")
        if LABEL_JOB in (pod["metadata"].get("labels") or {})
    ]


def stored_outcomes(s3: Minio, bucket: str, tenant: str, job_id: str) -> list[str]:
    """The attempts that stored an outcome (``attempts/<n>.json``); an attempt's folder
    ``attempts/<n>/`` holds its manifest and progress, not a run."""
    prefix = f"{tenant}/{job_id}/attempts/"
    return [o.object_name for o in s3.list_objects(bucket, prefix=prefix) if not o.is_dir]


def ocr(server: Server, key: str, pdf: bytes) -> requests.Response:
    return requests.post(
        server.base + OCR,
        headers={"X-API-Key": key},
        files={"file": ("scan.pdf", pdf, "application/pdf")},
        timeout=300,
    )


def test_sync_conversion_runs_in_the_api_and_shows_as_a_complete_documentjob(
    kube_server: Server, operator: Operator, kube: KubeClient, namespace: str
) -> None:
    key = kube_server.key("acme")
    # More requests than warm workers, one after the other: each finds a worker free again.
    for copy in range(3):
        answer = requests.post(
            f"{kube_server.base}/api/v1/convert/html-to-pdf",
            headers={"X-API-Key": key},
            data={"content": HTML + f"<!-- copy {copy} -->"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert answer.content.startswith(b"%PDF")
        # Answered while the Complete write may still be on its way: the answering API
        # reads the job as complete all the same.
        read = requests.get(
            f"{kube_server.base}/api/v1/jobs/{answer.headers['X-Job-Id']}",
            headers={"X-API-Key": key},
            timeout=10,
        )
        assert read.json()["status"] == "complete", read.text
    job_id = answer.headers["X-Job-Id"]

    # Other readers of the API server see it complete once that write lands.
    resource = wait_for(
        lambda: _complete(documentjob(kube, namespace, job_id)), 10, 0.05, what="Complete"
    )
    status = resource["status"]
    assert status["phase"] == "Complete" and status["attempts"] == 1
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Running": "False",
        "Finished": "True",
    }
    assert status["duration"]
    # Past the claim's lapse the operator still has nothing to do for a finished job.
    time.sleep(CLAIM_SECONDS + 2)
    operator.check_alive()
    assert runner_jobs(kube, namespace) == [] and runner_pods(kube, namespace) == []
    listed = requests.get(
        f"{kube_server.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}, timeout=10
    ).json()
    assert listed["status"] == "complete"


@pytest.mark.parametrize(
    ("api_env", "operator_env"),
    [({"DOCJOBS_KUBERNETES__CLAIM_SECONDS": str(CLAIM_SECONDS), **WEBHOOKS}, WEBHOOKS)],
    ids=["private-webhooks"],
)
def test_end_of_a_sync_job_is_delivered_once_by_the_operator(
    kube_server: Server, operator: Operator, kube: KubeClient, namespace: str
) -> None:
    key = kube_server.key("acme")
    with serve([(200, {}, b"{}")]) as receiver:
        created = requests.post(
            f"{kube_server.base}/v1/webhooks",
            headers={"x-api-key": key},
            json={"url": f"{receiver.url}/hook"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        answer = requests.post(
            f"{kube_server.base}/api/v1/convert/html-to-pdf",
            headers={"X-API-Key": key},
            data={"content": HTML},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        job_id = answer.headers["X-Job-Id"]
        # The API ended the job; its outbox, written with the end, is the operator's to send.
        (request,) = receiver.wait_for(1, timeout=60)
        event = Webhook(created.json()["secret"]).verify(request.body, request.headers)
        assert event["type"] == "job.completed" and event["data"]["jobId"] == job_id

        def closed() -> dict[str, Any] | None:
            outbox = documentjob(kube, namespace, job_id)["status"].get("webhooks") or {}
            return outbox if outbox.get("state") == "Done" else None

        outbox = wait_for(closed, 30, 0.1, what="the outbox closed")
        assert [d["state"] for d in outbox["deliveries"]] == ["Delivered"]
        assert runner_jobs(kube, namespace) == []
        time.sleep(2)  # nothing more comes
        assert len(receiver.received) == 1


def test_killed_api_job_is_taken_over_by_the_operator_and_completes_once(
    kube_server: Server,
    operator: Operator,
    kube: KubeClient,
    s3: Minio,
    cluster: Cluster,
    namespace: str,
) -> None:
    key = kube_server.key("acme")
    pdf, _ = pdf_with_pages(6, seed=11)
    threading.Thread(target=_ignore_errors, args=(ocr, kube_server, key, pdf), daemon=True).start()

    def claimed_and_running() -> dict[str, Any] | None:
        items = kube.items(documentjobs_path(namespace))
        return next(
            (r for r in items if (r.get("status") or {}).get("phase") == "Processing"), None
        )

    running = wait_for(claimed_and_running, 30, 0.05, what="the sync job to be processing")
    assert "docjobs.io/claim" in running["metadata"]["annotations"]
    assert runner_jobs(kube, namespace) == []
    kube_server.kill()  # SIGKILL: no release of the claim, the workers die with the API

    name = running["metadata"]["name"]
    done = wait_for(
        lambda: _phase(kube, namespace, name) == "Complete" or None,
        180,
        0.2,
        what="the operator to take the job over and complete it",
    )
    assert done
    job_id = running["spec"]["jobId"]
    assert [j["metadata"]["name"] for j in runner_jobs(kube, namespace)] == [f"{name}-a1"]
    bucket = cluster.s3["bucket"]
    assert stored_outcomes(s3, bucket, "acme", job_id) == [outcome_key("acme", job_id, 1)]
    assert documentjob(kube, namespace, job_id)["status"]["attempts"] == 1


def test_sync_requests_beyond_the_warm_workers_fall_back_to_runner_jobs(
    cluster: Cluster, namespace: str, crd: None, operator: Operator, kube: KubeClient, tmp_path
) -> None:
    server = Server(
        tmp_path / "one-worker",
        env={**cluster.env, "DOCJOBS_KUBERNETES__SYNC_WORKERS": "1"},
        args=["--backend", "kubernetes", "--namespace", namespace],
    ).start()
    try:
        key = server.key("acme")
        documents = [pdf_with_pages(3, seed=20 + n)[0] for n in range(3)]
        answers: list[requests.Response] = []
        threads = [
            threading.Thread(target=lambda d=d: answers.append(ocr(server, key, d)))
            for d in documents
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    finally:
        server.stop()
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    job_ids = {a.headers["X-Job-Id"] for a in answers}
    with_jobs = {j["metadata"]["labels"][LABEL_JOB] for j in runner_jobs(kube, namespace)}
    names = {resource_name(j): j for j in job_ids}
    assert 1 <= len(with_jobs) <= 2 and with_jobs < set(names)  # one ran in the API at least
    for job_id in job_ids:
        assert wait_for(lambda: _complete(documentjob(kube, namespace, job_id)), 10, 0.05)


def test_a_sync_parse_reading_scans_with_doctr_is_left_to_the_gpu_pool(
    cluster: Cluster, namespace: str, crd: None, operator: Operator, kube: KubeClient, tmp_path
) -> None:
    server = Server(
        tmp_path / "doctr-parse",
        env={**cluster.env, "DOCJOBS_LIMITS__SYNC_WAIT_SECONDS": "1"},
        args=["--backend", "kubernetes", "--namespace", namespace],
    ).start()
    try:
        headers = {"X-API-Key": server.key("acme")}
        template = requests.post(
            f"{server.base}/v1/templates",
            headers=headers,
            json={**INVOICE_TEMPLATE, "ocr": "advanced"},
            timeout=30,
        )
        assert template.status_code == 201, template.text
        answer = requests.post(
            f"{server.base}/v1/documents/parse",
            headers=headers,
            files={"file": ("scan.pdf", pdf_with_pages(1)[0], "application/pdf")},
            data={"templateId": template.json()["templateId"]},
            timeout=120,
        )
    finally:
        server.stop()
    assert answer.status_code in (200, 202), answer.text
    job_id = answer.json()["jobId"]
    annotations = documentjob(kube, namespace, job_id)["metadata"].get("annotations")
    assert CLAIM_ANNOTATION not in (annotations or {}), "the API's workers have no docTR"

    def runner_job() -> dict[str, Any] | None:
        jobs = runner_jobs(kube, namespace)
        name = resource_name(job_id)
        return next((j for j in jobs if j["metadata"]["labels"][LABEL_JOB] == name), None)

    job = wait_for(runner_job, 60, 0.2, what="the runner Job of the parse job")
    assert job["metadata"]["labels"]["docjobs.io/engine"] == "doctr"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" in container["resources"]["limits"]


def _complete(resource: dict[str, Any]) -> dict[str, Any] | None:
    return resource if (resource.get("status") or {}).get("phase") == "Complete" else None


def _phase(kube: KubeClient, ns: str, name: str) -> str | None:
    status = kube.get(documentjobs_path(ns, name)).get("status") or {}
    phase: str | None = status.get("phase")
    return phase


def _ignore_errors(call: Any, *args: Any) -> None:
    with contextlib.suppress(requests.RequestException):  # the API is killed mid-request
        call(*args)
