"""A pod's ServiceAccount identity on the process kubelet, and its ports on the shared host.

Identity: where the ServiceAccount admission plugin gave the pod its projected token volume
(``kube-api-access-*``, absent when automount is off), the kubelet asks the TokenRequest
API for a token of ``spec.serviceAccountName`` bound to the pod (it stops working when the
pod is deleted), writes it with the cluster's CA under the pod's own directory, and points
``KUBECONFIG`` at a kubeconfig using them. The in-cluster variables are not set: a client
that tries the in-cluster files first (kopf does) would read the host's, where it has any.
So a pod acts with its own RBAC; without the volume it gets no credentials at all.

Ports: pods share the host's network here, so each declared container port gets a free host
port (see ``podspec.remap_ports``), recorded on the pod in ``HOST_PORTS_ANNOTATION``.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import podspec
import yaml

from docjobs.kube.client import JSON, KubeClient, KubeError

HOST_PORTS_ANNOTATION = "rig.docjobs.io/host-ports"
"""``{"<containerPort>": <host port>}``: where a pod's declared ports really listen."""


def _token_source(pod: JSON) -> JSON | None:
    """The projected serviceAccountToken source containers[0] mounts, if any."""
    mounted = {m["name"] for m in pod["spec"]["containers"][0].get("volumeMounts", [])}
    for volume in pod["spec"].get("volumes", []):
        if volume["name"] not in mounted:
            continue
        for source in volume.get("projected", {}).get("sources", []):
            if "serviceAccountToken" in source:
                token: JSON = source["serviceAccountToken"]
                return token
    return None


def service_account_env(kube: KubeClient, pod: JSON, work_dir: Path) -> dict[str, str]:
    """``{"KUBECONFIG": ...}`` for a pod whose token is mounted, else nothing. Raises
    ``podspec.ConfigError`` (retried, as a mount failure is) while no token can be had."""
    source = _token_source(pod)
    if source is None:
        return {}
    meta = pod["metadata"]
    account = pod["spec"].get("serviceAccountName") or "default"
    request: JSON = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": int(source.get("expirationSeconds", 3607)),
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }
    if source.get("audience"):
        request["spec"]["audiences"] = [source["audience"]]
    path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token"
    try:
        token = kube.create(path, request)["status"]["token"]
    except KubeError as e:
        raise podspec.ConfigError(f"token of serviceaccount {account!r}: {e}") from e
    folder = work_dir / "serviceaccount"
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "token", token)
    _write(folder / "namespace", meta["namespace"])
    ca = kube.configuration.ssl_ca_cert
    _write(folder / "ca.crt", Path(ca).read_text() if ca else "")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "rig",
                "cluster": {"server": kube.host, "certificate-authority": str(folder / "ca.crt")},
            }
        ],
        "users": [{"name": account, "user": {"tokenFile": str(folder / "token")}}],
        "contexts": [
            {
                "name": "pod",
                "context": {"cluster": "rig", "user": account, "namespace": meta["namespace"]},
            }
        ],
        "current-context": "pod",
    }
    _write(folder / "kubeconfig", yaml.safe_dump(config))
    return {"KUBECONFIG": str(folder / "kubeconfig")}


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def host_ports(kube: KubeClient, pod: JSON) -> dict[int, int]:
    """A free host port for each declared port, published on the pod before it starts."""
    chosen: dict[int, int] = {}
    for port in podspec.container_ports(pod):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            chosen[port] = int(sock.getsockname()[1])
    if chosen:
        meta = pod["metadata"]
        note = json.dumps({str(k): v for k, v in chosen.items()})
        kube.patch(
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
            {"metadata": {"annotations": {HOST_PORTS_ANNOTATION: note}}},
        )
    return chosen
