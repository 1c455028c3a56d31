"""A job's progress in pages on the rig, shown by the jobs API, the parse API and ``kubectl
get dj``: a sharded job's from the pages of the shards that succeeded, a single-pod job's
from the progress its runner stores as it reads, which the operator copies."""

from __future__ import annotations

import pytest

from tests.api.test_job_progress import follow_progress
from tests.api.test_page_parallel import submit
from tests.docs import pdf_with_pages
from tests.rig.fixtures import Cluster, kubectl_table

from .conftest import Operator

PAGES = 6
SINGLE_POD_PAGES = 30
ONE_POD = {"DOCJOBS_OPERATOR__SHARD_THRESHOLD_PAGES": "0"}
"""Every document in one pod, however many pages it has."""


@pytest.fixture
def operator_env() -> dict[str, str]:
    """Shards of two pages, one at a time, so each shard's pages show before the next."""
    return {
        "DOCJOBS_OPERATOR__SHARD_THRESHOLD_PAGES": "4",
        "DOCJOBS_RUNNER__PART_PAGES": "2",
        "DOCJOBS_OPERATOR__SHARD_PARALLELISM": "1",
    }


def follow_everywhere(
    kube_server, operator: Operator, cluster: Cluster, namespace: str, pages: int, seed: int
) -> list[str]:
    """Submit a scan of ``pages`` pages and follow its progress in both API families (which
    must rise to every page) and in ``kubectl get dj``: the PROGRESS column's values."""
    key = kube_server.key("acme")
    document, _ = pdf_with_pages(pages, seed=seed)
    job_id = submit(kube_server, key, "scan.pdf", document, "application/pdf")
    kubectl_seen: list[str] = []

    def look_with_kubectl() -> None:
        operator.check_alive()
        (row,) = kubectl_table(cluster, "get", "dj", job_id.replace("_", "-"), "-n", namespace)
        if row["PROGRESS"] not in {"", "<none>"}:
            kubectl_seen.append(row["PROGRESS"])

    follow_progress(kube_server, key, job_id, pages, look_with_kubectl)
    assert kubectl_seen == sorted(kubectl_seen, key=lambda text: int(text.split("/")[0]))
    assert kubectl_seen[-1] == f"{pages}/{pages}"
    assert len(set(kubectl_seen)) > 1, f"only the end was shown: {kubectl_seen}"
    return kubectl_seen


def test_a_sharded_jobs_progress_rises_to_every_page_everywhere(
    kube_server, operator: Operator, cluster: Cluster, namespace: str
) -> None:
    kubectl_seen = follow_everywhere(kube_server, operator, cluster, namespace, PAGES, 31)
    # kubectl's column follows the same counts, shard by shard.
    assert set(kubectl_seen) <= {"0/6", "2/6", "4/6", "6/6"}, kubectl_seen


@pytest.mark.parametrize("operator_env", [ONE_POD], ids=["one-pod"])
def test_a_single_pod_jobs_progress_rises_page_by_page_everywhere(
    kube_server, operator: Operator, cluster: Cluster, namespace: str
) -> None:
    kubectl_seen = follow_everywhere(
        kube_server, operator, cluster, namespace, SINGLE_POD_PAGES, 47
    )
    jobs = kubectl_table(
        cluster,
        *("get", "jobs", "-n", namespace),
        "-o=custom-columns=NAME:.metadata.name,MODE:.spec.completionMode",
    )
    assert [job["MODE"] for job in jobs] == ["NonIndexed"], f"not one pod: {jobs}"
    # Page counts in between, read while the pod ran, not only its start and end.
    between = {text for text in kubectl_seen if 0 < int(text.split("/")[0]) < SINGLE_POD_PAGES}
    assert between, kubectl_seen
