"""API paths: one builder, every name one quoted segment."""

from __future__ import annotations

from docjobs.kube.paths import api_path, core_path, documentjobs_path, jobs_path, templates_path
from docjobs.operator.agenda import Ref


def test_paths_of_each_group() -> None:
    assert documentjobs_path("ns") == "/apis/docjobs.io/v1alpha1/namespaces/ns/documentjobs"
    assert (
        documentjobs_path("ns", "job-1", "status")
        == "/apis/docjobs.io/v1alpha1/namespaces/ns/documentjobs/job-1/status"
    )
    assert (
        templates_path("ns", "t") == "/apis/docjobs.io/v1alpha1/namespaces/ns/documenttemplates/t"
    )
    assert core_path("ns", "secrets", "keys") == "/api/v1/namespaces/ns/secrets/keys"
    assert jobs_path("ns", "job-1-a1") == "/apis/batch/v1/namespaces/ns/jobs/job-1-a1"
    assert api_path("v1", "nodes", "cpu-0", subresource="status") == "/api/v1/nodes/cpu-0/status"


def test_a_name_cannot_reach_another_path() -> None:
    # A slash, a query or a dot-dot segment stays inside the name's own segment.
    assert (
        core_path("ns", "secrets", "../../nodes") == "/api/v1/namespaces/ns/secrets/..%2F..%2Fnodes"
    )
    assert documentjobs_path("a/b", "x?watch=1") == (
        "/apis/docjobs.io/v1alpha1/namespaces/a%2Fb/documentjobs/x%3Fwatch%3D1"
    )
    assert Ref("a/b", "x?y").path == documentjobs_path("a/b", "x?y")
