"""Smoke tests for the local Kubernetes rig: real control plane, process kubelet."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

# The process kubelet and these tests talk to the apiserver through the
# kubernetes client; environments without it (the default dev venv) skip.
pytest.importorskip("kubernetes", reason="the local cluster rig needs the `kubernetes` package")

from docjobs.kube.client import KubeError

from .fixtures import RIG_DIR, Cluster, kubectl, wait_for
from .s3 import request as s3_request

IMAGE = "docjobs/runner:test"


def pinned_version() -> str:
    out = subprocess.run(
        [str(RIG_DIR / "build.sh"), "--print"], check=True, text=True, stdout=subprocess.PIPE
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines())["K8S_VERSION"]


def job(name: str, code: str, **spec: Any) -> dict[str, Any]:
    """A batch/v1 Job running `python3 -c code` via the runner image mapping."""
    pod_spec = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "main",
                "image": IMAGE,
                "command": ["python3", "-c", code],
                "env": spec.pop("env", []),
            }
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, **spec, "template": {"spec": pod_spec}},
    }


def job_pods(cluster: Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    pods = cluster.api().get(f"/api/v1/namespaces/{ns}/pods", labelSelector=f"job-name={name}")
    return list(pods["items"])


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), None)


def test_version_is_pinned(cluster: Cluster) -> None:
    version = cluster.api().get("/version")
    assert version["gitVersion"] == pinned_version() == cluster.k8s_version
    assert f"v{version['major']}.{version['minor']}" == ".".join(pinned_version().split(".")[:2])


def test_nodes_ready_with_pools_and_gpu_taint(cluster: Cluster) -> None:
    out = subprocess.run(
        [kubectl(), "--kubeconfig", str(cluster.kubeconfig), "get", "nodes", "-o", "json"],
        check=True,
        text=True,
        stdout=subprocess.PIPE,
    ).stdout
    nodes = {n["metadata"]["name"]: n for n in json.loads(out)["items"]}
    assert set(nodes) >= {"cpu-0", "gpu-0"}
    for name, pool in (("cpu-0", "cpu"), ("gpu-0", "gpu")):
        node = nodes[name]
        assert condition(node, "Ready")["status"] == "True"  # type: ignore[index]
        assert node["metadata"]["labels"]["docjobs.io/pool"] == pool
    gpu = nodes["gpu-0"]
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in gpu["spec"][
        "taints"
    ]
    assert gpu["status"]["allocatable"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in nodes["cpu-0"]["status"]["allocatable"]
    # The plain table output works too (what a person would run).
    table = subprocess.run(
        [kubectl(), "--kubeconfig", str(cluster.kubeconfig), "get", "nodes"],
        check=True,
        text=True,
        stdout=subprocess.PIPE,
    ).stdout
    assert "cpu-0" in table and "Ready" in table


def test_job_completes_with_termination_message(cluster: Cluster, namespace: str) -> None:
    api = cluster.api()
    api.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "stringData": {"token": "s3cr3t"},
        },
    )
    api.create(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cfg"},
            "data": {"mode": "fast"},
        },
    )
    code = (
        "import os, json\n"
        "keys = ('POD_NAME', 'POD_NS', 'NODE', 'POD_IP', 'TOKEN', 'MODE', 'GREETING')\n"
        "print('hi', json.dumps({k: os.environ.get(k) for k in keys}))\n"
        "open(os.environ['DOCJOBS_TERMINATION_LOG'], 'w').write('result=ok')\n"
    )
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "GREETING", "value": "hello $(POD_NS)"},
    ]
    api.create(f"/apis/batch/v1/namespaces/{namespace}/jobs", job("ok", code, env=env))
    done = cluster.wait_job_finished(namespace, "ok")
    assert condition(done, "Complete"), done["status"]
    assert done["status"]["succeeded"] == 1

    (pod,) = job_pods(cluster, namespace, "ok")
    name = pod["metadata"]["name"]
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"] == "cpu-0"  # the GPU node is tainted
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["message"]) == (0, "Completed", "result=ok")
    line = next(ln for ln in cluster.pod_log(namespace, name).splitlines() if ln.startswith("hi "))
    assert json.loads(line[3:]) == {
        "POD_NAME": name,
        "POD_NS": namespace,
        "NODE": "cpu-0",
        "POD_IP": "127.0.0.1",
        "TOKEN": "s3cr3t",
        "MODE": "fast",
        "GREETING": f"hello {namespace}",
    }


def test_a_secret_volume_waits_for_its_secret_then_holds_its_keys_as_files(
    cluster: Cluster, namespace: str
) -> None:
    api = cluster.api()
    code = (
        "import os, stat\n"
        "path = os.environ['URL_FILE']\n"
        "mode = stat.S_IMODE(os.stat(path).st_mode)\n"
        "print('read', oct(mode), open(path).read(), flush=True)\n"
    )
    spec = job("mounted", code, env=[{"name": "URL_FILE", "value": "/var/run/late/url"}])
    pod_spec = spec["spec"]["template"]["spec"]
    pod_spec["containers"][0]["volumeMounts"] = [
        {"name": "late", "mountPath": "/var/run/late", "readOnly": True}
    ]
    pod_spec["volumes"] = [
        {
            "name": "late",
            "secret": {
                "secretName": "late",
                "defaultMode": 0o400,
                "items": [{"key": "url", "path": "url"}],
            },
        }
    ]
    api.create(f"/apis/batch/v1/namespaces/{namespace}/jobs", spec)

    def waiting() -> dict[str, Any] | None:
        for pod in job_pods(cluster, namespace, "mounted"):
            for status in pod.get("status", {}).get("containerStatuses") or []:
                if "waiting" in status["state"]:
                    return dict(status["state"]["waiting"])
        return None

    held = wait_for(waiting, 60, what="the pod to wait for its Secret")
    assert held["reason"] == "ContainerCreating" and 'secret "late" not found' in held["message"]
    api.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "late"},
            "stringData": {"url": "http://store/manifest"},
        },
    )
    done = cluster.wait_job_finished(namespace, "mounted")
    assert condition(done, "Complete"), done["status"]
    (pod,) = job_pods(cluster, namespace, "mounted")
    log = cluster.pod_log(namespace, pod["metadata"]["name"])
    assert "read 0o400 http://store/manifest" in log, log


def test_pod_failure_policy_fails_job_on_exit_42(cluster: Cluster, namespace: str) -> None:
    spec = job(
        "exit42",
        "import sys; sys.exit(42)",
        backoffLimit=3,
        podFailurePolicy={
            "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
        },
    )
    cluster.api().create(f"/apis/batch/v1/namespaces/{namespace}/jobs", spec)
    done = cluster.wait_job_finished(namespace, "exit42")
    failed = condition(done, "Failed")
    assert failed and failed["reason"] == "PodFailurePolicy", done["status"]
    assert done["status"].get("failed") == 1  # FailJob: no retries despite backoffLimit


def test_active_deadline_kills_running_pod(cluster: Cluster, namespace: str) -> None:
    spec = job(
        "slow",
        "import time; print('sleeping', flush=True); time.sleep(300)",
        activeDeadlineSeconds=3,
    )
    cluster.api().create(f"/apis/batch/v1/namespaces/{namespace}/jobs", spec)
    done = cluster.wait_job_finished(namespace, "slow", timeout=60)
    failed = condition(done, "Failed")
    assert failed and failed["reason"] == "DeadlineExceeded", done["status"]
    # The Job controller deletes the pod; the kubelet kills its process and
    # finishes the deletion (the finalizer is then dropped by the controller).
    wait_for(
        lambda: not job_pods(cluster, namespace, "slow"), 60, what="deadline pod to be removed"
    )


def test_gpu_pod_lands_on_gpu_node(cluster: Cluster, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "gpu"},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"docjobs.io/pool": "gpu"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "ghcr.io/acme/docjobs-runner-gpu:1.0",
                    "command": ["python3", "-c", "print('gpu ok')"],
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }
            ],
        },
    }
    api = cluster.api()
    api.create(f"/api/v1/namespaces/{namespace}/pods", pod)
    done = cluster.wait_pod_finished(namespace, "gpu")
    assert done["spec"]["nodeName"] == "gpu-0"
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert "gpu ok" in cluster.pod_log(namespace, "gpu")


def test_unmapped_image_fails_pod(cluster: Cluster, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "busybox"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox:1.36", "command": ["true"]}],
        },
    }
    api = cluster.api()
    api.create(f"/api/v1/namespaces/{namespace}/pods", pod)
    done = cluster.wait_pod_finished(namespace, "busybox")
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["reason"] == "UnsupportedImage"
    assert "busybox" in done["status"]["message"]


def test_delete_sends_sigterm_then_removes_pod(cluster: Cluster, namespace: str) -> None:
    code = (
        "import signal, sys, time\n"
        "def bye(*_):\n"
        "    print('got SIGTERM', flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(300)\n"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sleeper"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "c", "image": IMAGE, "command": ["python3", "-c", code]}],
        },
    }
    api = cluster.api()
    path = f"/api/v1/namespaces/{namespace}/pods/sleeper"
    api.create(f"/api/v1/namespaces/{namespace}/pods", pod)
    wait_for(lambda: "ready" in cluster.pod_log(namespace, "sleeper"), 60, what="sleeper to start")
    assert api.get(path)["status"]["phase"] == "Running"
    started = time.monotonic()
    api.delete(path)

    def gone() -> bool:
        try:
            api.get(path)
            return False
        except KubeError as e:
            return e.status == 404

    wait_for(gone, 30, what="sleeper to be deleted")
    assert time.monotonic() - started < 5  # it exited on SIGTERM, no SIGKILL wait
    assert "got SIGTERM" in cluster.pod_log(namespace, "sleeper")


def test_s3_bucket_exists(cluster: Cluster) -> None:
    s3 = cluster.s3
    assert (s3["bucket"], s3["secure"]) == ("docjobs", "false")
    assert cluster.env["KUBECONFIG"] == str(cluster.kubeconfig)
    assert (
        s3_request(s3["endpoint"], s3["access_key"], s3["secret_key"], "HEAD", f"/{s3['bucket']}")
        == 200
    )
