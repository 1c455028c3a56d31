"""The chart against the rig's real kube-apiserver: every values file's manifests pass
server-side validation and admission, and the chart's RBAC, impersonated, allows each
ServiceAccount what its code does and nothing more."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.crds import install_crds
from tests.rig.fixtures import Cluster, wait_for

from .conftest import CHART, RELEASE, REPO, VALUES, Render, kubectl_run, template_text

VALUES_FILES = sorted(VALUES.glob("*.yaml"))
RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


@pytest.mark.parametrize("values", VALUES_FILES, ids=[p.stem for p in VALUES_FILES])
def test_manifests_pass_server_side_dry_run(
    helm: str,
    cluster: Cluster,
    namespace: str,
    values: Path,
) -> None:
    manifests = template_text(helm, values, namespace)
    # --force-conflicts: other tests own the rig's CRDs; a dry run changes nothing anyway.
    done = kubectl_run(
        cluster.kubeconfig,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "--field-manager=docjobs-chart-test",
        "-f",
        "-",
        stdin=manifests,
    )
    assert done.returncode == 0, done.stderr
    applied = [line for line in done.stdout.splitlines() if "serverside-applied" in line]
    assert len(applied) == len([d for d in yaml.safe_load_all(manifests) if d])


def _install_rbac(render: Render, cluster: Cluster, namespace: str, values: Path) -> None:
    # `can-i` on a resource the API server does not serve answers no: the CRDs come first.
    install_crds(cluster.api())
    objects = [m for m in render(values, namespace) if m["kind"] in RBAC_KINDS]
    done = kubectl_run(cluster.kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    assert done.returncode == 0, done.stderr
    # The authorizer learns new Roles from a watch: wait until the last one is in effect.
    wait_for(
        lambda: _can(cluster, namespace, "api", "create", "documentjobs.docjobs.io"),
        30,
        what="the chart's Roles to take effect",
    )


def _can(
    cluster: Cluster, namespace: str, account: str, verb: str, what: str, where: str = ""
) -> bool:
    done = kubectl_run(
        cluster.kubeconfig,
        "auth",
        "can-i",
        verb,
        what,
        "--namespace",
        where or namespace,
        f"--as=system:serviceaccount:{namespace}:{RELEASE}-docjobs-{account}",
    )
    assert done.stdout.strip() in ("yes", "no"), done.stderr
    return done.stdout.strip() == "yes"


API_MAY = [
    ("create", "documentjobs.docjobs.io"),
    ("watch", "documentjobs.docjobs.io"),
    ("patch", "documentjobs.docjobs.io"),
    ("delete", "documenttemplates.docjobs.io"),
    ("update", "secrets/r-docjobs-api-keys"),
    ("watch", "secrets/r-docjobs-api-keys"),
    ("get", "secrets/r-docjobs-webhooks"),
    ("patch", "documentjobs.docjobs.io/status"),
]
API_MUST_NOT = [
    ("create", "jobs.batch"),
    ("list", "jobs.batch"),
    ("get", "pods"),
    ("create", "pods"),
    ("list", "secrets"),
    ("get", "secrets/r-docjobs-s3"),
    ("create", "secrets"),
    ("delete", "documentjobs.docjobs.io"),
    ("update", "documentjobs.docjobs.io/status"),
]
OPERATOR_MAY = [
    ("watch", "documentjobs.docjobs.io"),
    ("update", "documentjobs.docjobs.io/status"),
    ("delete", "documentjobs.docjobs.io"),
    ("list", "documenttemplates.docjobs.io"),
    ("create", "jobs.batch"),
    ("delete", "jobs.batch"),
    ("watch", "pods"),
    ("create", "events"),
    ("update", "secrets/r-docjobs-webhooks"),
    ("create", "secrets"),  # runner Jobs' manifest URLs
]
OPERATOR_MUST_NOT = [
    ("get", "secrets/r-docjobs-api-keys"),
    ("get", "secrets/r-docjobs-s3"),
    ("list", "secrets"),
    ("update", "secrets/r-docjobs-api-keys"),
    ("delete", "secrets/r-docjobs-api-keys"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "documentjobs.docjobs.io"),
    ("delete", "documenttemplates.docjobs.io"),
    ("create", "roles.rbac.authorization.k8s.io"),
]

WORKERS_MAY = [
    ("watch", "documentjobs.docjobs.io"),
    ("patch", "documentjobs.docjobs.io"),
    ("get", "documentjobs.docjobs.io/status"),
    ("patch", "documentjobs.docjobs.io/status"),
]
WORKERS_MUST_NOT = [
    ("create", "documentjobs.docjobs.io"),
    ("delete", "documentjobs.docjobs.io"),
    ("update", "documentjobs.docjobs.io"),
    ("update", "documentjobs.docjobs.io/status"),
    ("get", "documenttemplates.docjobs.io"),
    ("get", "secrets/r-docjobs-api-keys"),
    ("get", "secrets/r-docjobs-webhooks"),
    ("get", "secrets/r-docjobs-s3"),
    ("list", "secrets"),
    ("create", "jobs.batch"),
    ("list", "pods"),
    ("create", "events"),
]


def test_each_service_account_may_do_its_work_and_nothing_else(
    render: Render,
    cluster: Cluster,
    namespace: str,
) -> None:
    _install_rbac(render, cluster, namespace, VALUES / "defaults.yaml")
    wrong = [
        f"{account} {'cannot' if allowed else 'can'} {verb} {what}"
        for account, rules, allowed in (
            ("api", API_MAY, True),
            ("api", API_MUST_NOT, False),
            ("operator", OPERATOR_MAY, True),
            ("operator", OPERATOR_MUST_NOT, False),
            ("workers", WORKERS_MAY, True),
            ("workers", WORKERS_MUST_NOT, False),
        )
        for verb, what in rules
        if _can(cluster, namespace, account, verb, what) != allowed
    ]
    # Nothing outside the release's namespace, not even what it may do inside.
    for account, verb, what in (
        ("operator", "create", "jobs.batch"),
        ("api", "create", "documentjobs.docjobs.io"),
        ("workers", "patch", "documentjobs.docjobs.io"),
    ):
        if _can(cluster, namespace, account, verb, what, where="default"):
            wrong.append(f"{account} can {verb} {what} in namespace default")
    assert not wrong
    # The runner: exactly what any authenticated identity may (discovery, self-review).
    runner, nobody = (
        kubectl_run(
            cluster.kubeconfig,
            "auth",
            "can-i",
            "--list",
            "--namespace",
            namespace,
            f"--as=system:serviceaccount:{namespace}:{account}",
        ).stdout
        for account in (f"{RELEASE}-docjobs-runner", "no-such-account")
    )
    assert runner == nobody and "selfsubjectaccessreviews" in runner


def test_cluster_wide_operator_reaches_other_namespaces_but_secrets_stay_named(
    render: Render,
    cluster: Cluster,
    namespace: str,
) -> None:
    _install_rbac(render, cluster, namespace, VALUES / "cluster-wide.yaml")
    try:
        assert _can(cluster, namespace, "operator", "create", "jobs.batch", where="default")
        assert not _can(cluster, namespace, "operator", "get", "secrets/r-docjobs-s3", "default")
        assert not _can(cluster, namespace, "operator", "list", "secrets", where="default")
        # The API and the workers stay in their namespace whatever the operator's scope.
        assert not _can(cluster, namespace, "api", "get", "documentjobs.docjobs.io", "default")
        assert not _can(cluster, namespace, "workers", "get", "documentjobs.docjobs.io", "default")
    finally:
        name = f"{namespace}-{RELEASE}-docjobs-operator"
        for kind in ("clusterrolebinding", "clusterrole"):
            kubectl_run(cluster.kubeconfig, "delete", kind, name, "--ignore-not-found")


def test_gitops_templates_are_accepted_by_the_api_server(
    cluster: Cluster,
    namespace: str,
) -> None:
    # The repository's CRDs (the chart's copy is the same, see test_render).
    crds = kubectl_run(
        cluster.kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds")
    )
    assert crds.returncode == 0, crds.stderr
    done = kubectl_run(
        cluster.kubeconfig,
        "apply",
        "--server-side",
        "--dry-run=server",
        "-n",
        namespace,
        "-k",
        str(CHART / "examples" / "templates"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("serverside-applied") == 2
