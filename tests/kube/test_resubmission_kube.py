"""A submission whose DocumentJob failed or was cancelled runs again under a successor name
(``job_<hex>-2``, ``-3``...), and concurrent retries all land on that one job.

As in test_api_kube, no operator runs: the tests patch the status as it would.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

from docjobs.domain.idempotency import DUPLICATE_MESSAGE
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import resource_name
from tests.docs import pdf_with_pages
from tests.kube.helpers import api_status, documentjob, now, patch_status
from tests.kube.test_api_kube import submit
from tests.rig.fixtures import wait_for

QUEUED = "Job queued for processing"


def test_failed_and_cancelled_jobs_are_followed_by_one_successor_each(
    kube_server, kube, s3, cluster, namespace
) -> None:
    key = kube_server.key("acme")
    pdf, _ = pdf_with_pages(1, seed=41)
    first = submit(kube_server, key, pdf).json()["job_id"]
    failure = {"reason": "UnreadableDocument", "message": "page 1 is damaged", "permanent": True}
    failed = {"phase": "Failed", "completedAt": now(), "error": failure}
    patch_status(kube, namespace, first, failed)
    api_status(kube_server, key, first, "failed")

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: submit(kube_server, key, pdf), range(4)))

    assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
    successor = f"{first}-2"
    assert {a.json()["job_id"] for a in answers} == {successor}
    assert sorted(a.json()["message"] for a in answers) == [QUEUED] + [DUPLICATE_MESSAGE] * 3
    assert documentjob(kube, namespace, successor)["spec"]["jobId"] == successor
    inputs = s3.list_objects(cluster.s3["bucket"], prefix=f"acme/{successor}/", recursive=True)
    assert len(list(inputs)) == 1, "the duplicates' uploads must be gone"
    # The failed job is still there to read, as it was.
    assert api_status(kube_server, key, first, "failed")["job_id"] == first

    url = f"{kube_server.base}/api/v1/jobs/{successor}"
    assert requests.delete(url, headers={"X-API-Key": key}, timeout=30).status_code == 204
    patch_status(kube, namespace, successor, {"phase": "Cancelled", "completedAt": now()})
    api_status(kube_server, key, successor, "cancelled")

    third = submit(kube_server, key, pdf).json()
    assert (third["job_id"], third["message"]) == (f"{first}-3", QUEUED)
    again = submit(kube_server, key, pdf).json()
    assert (again["job_id"], again["message"]) == (f"{first}-3", DUPLICATE_MESSAGE)


def test_a_job_deleted_after_its_ttl_no_longer_counts_as_a_twin(
    kube_server, kube, namespace
) -> None:
    key = kube_server.key("acme")
    pdf, _ = pdf_with_pages(1, seed=43)
    first = submit(kube_server, key, pdf).json()["job_id"]
    failure = {"reason": "UnreadableDocument", "message": "page 1 is damaged", "permanent": True}
    patch_status(
        kube, namespace, first, {"phase": "Failed", "completedAt": now(), "error": failure}
    )
    api_status(kube_server, key, first, "failed")

    # What the operator does once the TTL has passed; the API forgets the job.
    kube.delete(documentjobs_path(namespace, resource_name(first)))
    url = f"{kube_server.base}/api/v1/jobs/{first}"
    wait_for(
        lambda: requests.get(url, headers={"X-API-Key": key}, timeout=10).status_code == 404,
        20,
        0.1,
        what="the deleted job to read 404",
    )

    # With no twin left, the submission runs again under its first name, not a successor's.
    again = submit(kube_server, key, pdf).json()
    assert (again["job_id"], again["message"]) == (first, QUEUED)
