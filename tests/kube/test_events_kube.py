"""A job's event stream in Kubernetes mode: the API's watch cache feeds it.

No operator runs here: the test patches the DocumentJob's status as the operator would.
"""

from __future__ import annotations

import requests

from tests.api.test_job_progress import events
from tests.docs import pdf_with_pages
from tests.kube.helpers import now, patch_status
from tests.kube.test_api_kube import submit


def test_events_follow_the_resource_to_its_end(kube_server, kube, namespace) -> None:
    key = kube_server.key("acme")
    pdf, _ = pdf_with_pages(2, seed=5)
    job_id = submit(kube_server, key, pdf).json()["job_id"]
    stranger = requests.get(
        f"{kube_server.base}/api/v1/jobs/{job_id}/events",
        headers={"X-API-Key": kube_server.key("globex")},
        timeout=10,
    )
    assert stranger.status_code == 404

    stream = events(kube_server, key, job_id)
    pending = next(stream)
    assert (pending.name, pending.data["status"]) == ("status", "pending")

    started = {"phase": "Processing", "attempts": 1, "startedAt": now()}
    patch_status(kube, namespace, job_id, started)
    processing = next(stream)
    assert (processing.name, processing.data["status"]) == ("status", "processing")

    patch_status(kube, namespace, job_id, {"progress": {"pagesDone": 1, "pagesTotal": 2}})
    progress = next(stream)
    assert progress.name == "progress"
    assert progress.data["progress"] == {"pages_done": 1, "pages_total": 2}

    failed = {"phase": "Failed", "completedAt": now()}
    patch_status(kube, namespace, job_id, {**failed, "message": "the scan is unreadable"})
    end = next(stream)
    assert (end.name, end.data["status"]) == ("end", "failed")
    assert list(stream) == [], "the stream goes on after the end"
