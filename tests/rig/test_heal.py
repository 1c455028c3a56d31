"""A rig that heals in place: ``local-cluster up`` on a partly running rig restarts only the
dead components, on the same ports with the same data; and the process kubelet reports a
pod's end however long the API server was away.

These tests kill parts of a rig, so they run one of their own (its own state directory and
ports), never the shared one other test sessions use.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from minio import Minio

pytest.importorskip("kubernetes", reason="the local cluster rig needs the `kubernetes` package")

from docjobs.kube.client import KubeClient

from . import control
from .fixtures import REPO_ROOT, _read_env, local_cluster, wait_for

IMAGE = "docjobs/runner:test"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A rig of this module's own; its state directory."""
    with control.own_rig(tmp_path_factory.mktemp("rig")) as state:
        yield state


def api(state: Path) -> KubeClient:
    return KubeClient.from_environment(kubeconfig=str(state / "kubeconfig"))


def s3(state: Path) -> Minio:
    env = _read_env(state / "env")
    return Minio(
        env["DOCJOBS_S3_ENDPOINT"],
        access_key=env["DOCJOBS_S3_ACCESS_KEY"],
        secret_key=env["DOCJOBS_S3_SECRET_KEY"],
        secure=False,
    )


def test_up_restarts_only_dead_components_with_their_ports_and_data(rig: Path) -> None:
    kube = api(rig)
    kube.create("/api/v1/namespaces", {"metadata": {"name": "kept"}})
    for file in ("documentjob.yaml", "documenttemplate.yaml"):
        kube.create(CRDS, yaml.safe_load((REPO_ROOT / "crds" / file).read_text()))
    bucket = _read_env(rig / "env")["DOCJOBS_S3_BUCKET"]
    s3(rig).put_object(bucket, "acme/kept/input", io.BytesIO(b"still here"), 10)
    ca = (rig / "pki" / "ca.crt").read_bytes()
    ports, before = control.ports(rig), control.pids(rig)

    for component in ("kube-apiserver", "minio"):
        control.kill(rig, component)
    assert local_cluster("status", 30, rig).returncode == 1
    control.heal(rig)

    after = control.pids(rig)
    restarted = {c for c in before if after[c] != before[c]}
    assert restarted == {"kube-apiserver", "minio"}
    assert all(control.alive(pid) for pid in after.values())
    assert control.ports(rig) == ports and (rig / "pki" / "ca.crt").read_bytes() == ca
    # The old kubeconfig and client still work: same port, same CA, same token.
    assert kube.get("/api/v1/namespaces/kept")["status"]["phase"] == "Active"
    crds = {c["metadata"]["name"] for c in kube.get(CRDS)["items"]}
    assert {"documentjobs.docjobs.io", "documenttemplates.docjobs.io"} <= crds
    got = s3(rig).get_object(bucket, "acme/kept/input")
    assert got.read() == b"still here"
    got.close()
    # status and down see the restarted components.
    status = local_cluster("status", 30, rig)
    assert status.returncode == 0
    assert f"pid {after['kube-apiserver']}" in status.stdout
    assert f"pid {after['minio']}" in status.stdout


def test_kubelet_reports_a_pods_end_after_a_30_s_api_server_outage(rig: Path) -> None:
    kube = api(rig)
    ns = "outage"
    kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
    wait_for(lambda: kube.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default"), 30)
    kube.create(f"/api/v1/namespaces/{ns}/pods", _pod("short", "import time; time.sleep(4)"))
    path = f"/api/v1/namespaces/{ns}/pods/short"
    wait_for(lambda: _phase(kube.get(path)) == "Running", 60, what="the pod to run")

    control.kill(rig, "kube-apiserver")
    time.sleep(30)  # the pod ends meanwhile; its end cannot be reported
    control.heal(rig)

    pod = wait_for(lambda: _done(kube.get(path)), 30, 0.2, what="the pod's end reported")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"]) == ("Succeeded", 0)


def test_down_stops_components_that_up_restarted(rig: Path) -> None:
    control.kill(rig, "minio")
    control.heal(rig)
    restarted = control.pids(rig)
    local_cluster("down", 120, rig)
    assert not any(control.alive(pid) for pid in restarted.values())
    assert local_cluster("status", 30, rig).returncode == 1


def _pod(name: str, code: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": IMAGE, "command": ["python3", "-c", code]}],
        },
    }


def _phase(pod: dict[str, Any]) -> str:
    return str(pod.get("status", {}).get("phase", ""))


def _done(pod: dict[str, Any]) -> dict[str, Any] | None:
    return pod if _phase(pod) in ("Succeeded", "Failed") else None
