"""A sharded job's progress in pages on the rig: the operator counts the pages of the shards
that succeeded, and the jobs API, the parse API and ``kubectl get dj`` show it."""

from __future__ import annotations

import pytest

from tests.api.test_job_progress import follow_progress
from tests.api.test_page_parallel import submit
from tests.docs import pdf_with_pages
from tests.rig.fixtures import Cluster, kubectl_table

from .conftest import Operator

PAGES = 6


@pytest.fixture
def operator_env() -> dict[str, str]:
    """Shards of two pages, one at a time, so each shard's pages show before the next."""
    return {
        "DOCJOBS_OPERATOR__SHARD_THRESHOLD_PAGES": "4",
        "DOCJOBS_OPERATOR__SHARD_PAGES": "2",
        "DOCJOBS_OPERATOR__SHARD_PARALLELISM": "1",
    }


def test_a_sharded_jobs_progress_rises_to_every_page_everywhere(
    kube_server, operator: Operator, cluster: Cluster, namespace: str
) -> None:
    key = kube_server.key("acme")
    document, _ = pdf_with_pages(PAGES, seed=31)
    job_id = submit(kube_server, key, "scan.pdf", document, "application/pdf")
    kubectl_seen: list[str] = []

    def look_with_kubectl() -> None:
        operator.check_alive()
        (row,) = kubectl_table(cluster, "get", "dj", job_id.replace("_", "-"), "-n", namespace)
        if row["PROGRESS"] not in {"", "<none>"}:
            kubectl_seen.append(row["PROGRESS"])

    follow_progress(kube_server, key, job_id, PAGES, look_with_kubectl)

    # kubectl's column follows the same counts, shard by shard, to every page.
    assert kubectl_seen == sorted(kubectl_seen, key=lambda text: int(text.split("/")[0]))
    assert set(kubectl_seen) <= {"0/6", "2/6", "4/6", "6/6"}, kubectl_seen
    assert kubectl_seen[-1] == f"{PAGES}/{PAGES}"
    assert len(set(kubectl_seen)) > 1, f"only the end was shown: {kubectl_seen}"
