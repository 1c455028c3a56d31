"""A real ``helm install`` of the chart on a rig of this module's own (the chart owns the
CRDs, which the shared rig's other tests own there): the API and operator pods run as local
processes with their own ServiceAccount tokens, a document submitted to the release's API
completes on a runner pod, an upgrade that turns the claiming workers on has the next one
run by a worker pod, and upgrade and uninstall keep the CRD, the DocumentJobs and their
results."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from docjobs.kube.client import KubeClient, KubeError
from docjobs.kube.paths import core_path, documentjobs_path, jobs_path
from tests.docs import pdf_with_pages
from tests.rig import control
from tests.rig.fixtures import Cluster, cluster_at, wait_for

from .conftest import CHART, RELEASE, run_helm

NS = "docjobs"
CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/documentjobs.docjobs.io"
HOST_PORTS = "rig.docjobs.io/host-ports"  # tests/rig/podidentity.py
OCR = "/api/v1/ocr/extract/simple?async=true"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with control.own_rig(tmp_path_factory.mktemp("rig")) as state:
        yield cluster_at(state)


def _values(rig: Cluster, path: Path, **extra: Any) -> Path:
    """The chart pointed at the rig's MinIO as an external S3 endpoint."""
    s3 = rig.s3
    values = {
        "s3": {
            "endpoint": s3["endpoint"],
            "bucket": s3["bucket"],
            "secure": False,
            "accessKey": s3["access_key"],
            "secretKey": s3["secret_key"],
        },
        **extra,
    }
    path.write_text(yaml.safe_dump(values))
    return path


def _helm(helm: str, rig: Cluster, *args: str) -> str:
    done = run_helm(helm, *args, "--namespace", NS, "--kubeconfig", str(rig.kubeconfig))
    assert done.returncode == 0, done.stderr
    return done.stdout


def _running(api: KubeClient, component: str) -> list[dict[str, Any]]:
    """The component's pods whose process runs, once they are all that is left."""
    pods = api.items(core_path(NS, "pods"), {"app.kubernetes.io/component": component})
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    running = [p for p in live if p.get("status", {}).get("phase") == "Running"]
    return running if running and len(running) == len(live) else []


def _process_env(rig: Cluster, pod: dict[str, Any]) -> dict[str, str]:
    """The environment of the pod's process, as ``kubectl exec`` would get it."""
    key = f"{NS}_{pod['metadata']['name']}"
    pid = (rig.state_dir / "pods" / f"{key}.pid").read_text().split()[0]
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _whoami(env: dict[str, str]) -> str:
    """The identity the pod's own credentials carry (a SelfSubjectReview)."""
    own = KubeClient.from_environment(kubeconfig=env["KUBECONFIG"])
    review = own.create(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    return str(review["status"]["userInfo"]["username"])


def _api_url(api: KubeClient) -> str:
    pod = wait_for(lambda: (_running(api, "api") or [None])[0], 120, 0.5, what="an API pod")
    port = json.loads(pod["metadata"]["annotations"][HOST_PORTS])["8000"]
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/readyz", timeout=2).ok
        except requests.RequestException:
            return False

    wait_for(ready, 60, 0.5, what=f"the API of pod {pod['metadata']['name']} to be ready")
    return url


def _wait_ready(rig: Cluster, pod: dict[str, Any], port: str) -> None:
    """Until the pod's ``/readyz`` (on its container ``port``) answers 200; the pod's log
    says why not."""
    host_port = json.loads(pod["metadata"]["annotations"][HOST_PORTS])[port]
    name = pod["metadata"]["name"]

    def ready() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{host_port}/readyz", timeout=2).ok
        except requests.RequestException:
            return False

    try:
        wait_for(ready, 60, 0.5, what=f"pod {name} to be ready")
    except pytest.fail.Exception:
        pytest.fail(f"pod {name} not ready in 60 s; its log:\n{rig.pod_log(NS, name)[-4000:]}")


def test_install_run_upgrade_uninstall(helm: str, rig: Cluster, tmp_path: Path) -> None:
    api = rig.api()
    # No workers at first: the runner pod's credentials are what this part checks.
    values = _values(rig, tmp_path / "values.yaml", workers={"replicas": 0})
    _helm(helm, rig, "install", RELEASE, str(CHART), "--create-namespace", "-f", str(values))
    wait_for(lambda: len(_running(api, "api")) == 2, 180, 0.5, what="two API pods running")
    wait_for(lambda: _running(api, "operator"), 120, 0.5, what="the operator pod running")

    # Each pod acts as its own ServiceAccount, never as the admin.
    for component in ("api", "operator"):
        env = _process_env(rig, _running(api, component)[0])
        assert _whoami(env) == f"system:serviceaccount:{NS}:{RELEASE}-docjobs-{component}"
        assert not {"KUBERNETES_SERVICE_HOST", "DOCJOBS_S3_ACCESS_KEY"} & env.keys()
    api_env = _process_env(rig, _running(api, "api")[0])
    with pytest.raises(KubeError) as denied:
        KubeClient.from_environment(kubeconfig=api_env["KUBECONFIG"]).get(core_path(NS, "pods"))
    assert denied.value.status == 403

    # A key, made as `kubectl exec deploy/...-api -- docjobs keys create` would (NOTES.txt).
    made = subprocess.run(
        [
            "docjobs",
            "keys",
            "create",
            "--tenant",
            "acme",
            "--plan",
            "pro",
            "--backend",
            "kubernetes",
        ],
        env=api_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    headers = {"X-API-Key": key}

    url = _api_url(api)
    pdf, _ = pdf_with_pages(1, seed=9)
    submitted = requests.post(
        url + OCR, headers=headers, files={"file": ("scan.pdf", pdf, "application/pdf")}, timeout=30
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = requests.get(
            f"{url}/api/v1/jobs/{job_id}", headers=headers, timeout=10
        ).json()
        return body if body.get("status") in ("complete", "failed") else None

    done = wait_for(finished, 180, 1, what=f"job {job_id} to finish")
    assert done["status"] == "complete", done
    result = requests.get(f"{url}/api/v1/jobs/{job_id}/result", headers=headers, timeout=10)
    assert result.status_code == 200 and result.content
    # The chart's RBAC is all they needed: not one request of theirs was refused.
    for component in ("api", "operator"):
        for pod in _running(api, component):
            assert "Forbidden" not in rig.pod_log(NS, pod["metadata"]["name"])
    # The runner's pod (automount off) got no credentials at all.
    runners = api.items(core_path(NS, "pods"), {"docjobs.io/job": job_id.replace("_", "-")})
    runner_dir = rig.state_dir / "pods" / f"{NS}_{runners[0]['metadata']['name']}"
    assert runner_dir.is_dir() and not (runner_dir / "serviceaccount").exists()
    # Nor any S3 credential: only the presigned URL of its attempt's manifest, in a file
    # from its Job's own Secret (the operator's RBAC let it create that).
    runner_env = {e["name"] for e in runners[0]["spec"]["containers"][0]["env"]}
    assert "DOCJOBS_RUNNER__MANIFEST_FILE" in runner_env
    assert "X-Amz-Signature" not in json.dumps(runners[0]["spec"])
    assert not [name for name in runner_env if name.startswith("DOCJOBS_S3")], runner_env

    # Upgrade with changed values (settings roll every pod): the same job and result, served
    # by new pods, never run again, and the CRD kept.
    crd_uid = api.get(CRD)["metadata"]["uid"]
    old = {p["metadata"]["name"] for c in ("api", "operator") for p in _running(api, c)}
    changed = _values(
        rig,
        tmp_path / "changed.yaml",
        api={"replicas": 1},
        runner={"jobTTLSeconds": 300},
        workers={"replicas": 1},
    )
    _helm(helm, rig, "upgrade", RELEASE, str(CHART), "-f", str(changed))

    def rolled() -> bool:
        pods = _running(api, "api") + _running(api, "operator")
        return len(pods) == 2 and not old & {p["metadata"]["name"] for p in pods}

    wait_for(rolled, 180, 0.5, what="one new API pod and a new operator pod")
    url = _api_url(api)
    again = requests.get(f"{url}/api/v1/jobs/{job_id}/result", headers=headers, timeout=10)
    assert again.status_code == 200 and again.content == result.content
    assert api.get(CRD)["metadata"]["uid"] == crd_uid
    resource = api.get(documentjobs_path(NS, job_id.replace("_", "-")))
    assert (resource["status"]["phase"], resource["status"]["attempts"]) == ("Complete", 1)

    # The upgrade turned the workers on: once one is ready, a small document runs on it, as
    # its own ServiceAccount, and no runner Job is made for it.
    worker = wait_for(lambda: (_running(api, "workers") or [None])[0], 120, 0.5, what="a worker")
    worker_env = _process_env(rig, worker)
    assert _whoami(worker_env) == f"system:serviceaccount:{NS}:{RELEASE}-docjobs-workers"
    _wait_ready(rig, worker, "8080")
    pdf, _ = pdf_with_pages(1, seed=10)
    submitted = requests.post(
        url + OCR, headers=headers, files={"file": ("two.pdf", pdf, "application/pdf")}, timeout=30
    )
    assert submitted.status_code == 202, submitted.text
    first_job, job_id = job_id, submitted.json()["job_id"]  # `finished` follows job_id
    done = wait_for(finished, 180, 1, what=f"job {job_id} to finish on a worker")
    assert done["status"] == "complete", done
    assert not api.items(jobs_path(NS), {"docjobs.io/job": job_id.replace("_", "-")})
    assert "Forbidden" not in rig.pod_log(NS, worker["metadata"]["name"])

    # Uninstall: the release's pods go, the CRD and the DocumentJobs stay.
    _helm(helm, rig, "uninstall", RELEASE, "--wait")
    assert api.get(CRD)["metadata"]["uid"] == crd_uid
    kept = api.items(documentjobs_path(NS))
    assert sorted(r["spec"]["jobId"] for r in kept) == sorted([first_job, job_id])
    assert {r["status"]["phase"] for r in kept} == {"Complete"}
