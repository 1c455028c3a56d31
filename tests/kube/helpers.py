"""Playing the operator's part, and reading the API, in kubernetes-mode tests."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from docjobs.kube.client import KubeClient
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import resource_name
from tests.conftest import BIN, Server, free_port
from tests.rig import control
from tests.rig.fixtures import Cluster, wait_for


def documentjob(kube: KubeClient, ns: str, job_id: str) -> dict[str, Any]:
    return kube.get(documentjobs_path(ns, resource_name(job_id)))


def patch_status(kube: KubeClient, ns: str, job_id: str, status: dict[str, Any]) -> None:
    """What the operator would do: a merge patch of the status subresource."""
    kube.merge_patch(documentjobs_path(ns, resource_name(job_id), "status"), {"status": status})


def api_status(server: Server, key: str, job_id: str, want: str, timeout: float = 20) -> dict:
    """Poll the API until the job reads ``want``."""

    def read() -> dict | None:
        body = requests.get(
            f"{server.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}, timeout=10
        ).json()
        return body if body.get("status") == want else None

    return wait_for(read, timeout, 0.1, what=f"job {job_id} to read {want!r}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextmanager
def paused(cluster: Cluster, component: str) -> Iterator[None]:
    """The rig's ``component`` stopped with SIGSTOP: it keeps its port and its connections,
    and answers nothing, as a hung or cut-off service does. Resumed whatever happens: other
    test sessions share the rig."""
    pid = control.pids(cluster.state_dir)[component]
    assert component in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@dataclass
class WorkerPod:
    """``docjobs workers --namespace NS`` as a child process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def ready(self) -> bool:
        assert self.process.poll() is None, self.log()
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).ok
        except requests.RequestException:
            return False

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text

    def kill(self) -> None:
        """SIGKILL: no release of its claims, as when its node dies."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


PORT_TRIES = 3
"""Ports a worker pod is started on before its start counts as failed."""


def start_worker_pod(
    cluster: Cluster,
    namespace: str,
    log_path: Path,
    concurrency: int,
    claim_seconds: float,
    engines: list[str] | None = None,
) -> WorkerPod:
    """``docjobs workers --namespace NS`` with its own port, ready; claiming jobs of
    ``engines`` (None: its default, every engine of the shared image)."""
    env = {
        **os.environ,
        **cluster.env,
        "DOCJOBS_WORKERS__CONCURRENCY": str(concurrency),
        "DOCJOBS_KUBERNETES__CLAIM_SECONDS": str(claim_seconds),
    }
    if engines is not None:
        env["DOCJOBS_WORKERS__ENGINES"] = json.dumps(engines)
    # A free port can be taken by another test session's server before the pod binds it:
    # then the pod exits at once, and starts again on another port.
    for tries_left in reversed(range(PORT_TRIES)):
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(BIN / "docjobs"), "workers", "--namespace", namespace, "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        pod = WorkerPod(process, port, log_path)
        try:
            wait_for(pod.ready, 60, 0.1, what=f"the worker pod ready (log {log_path})")
        except AssertionError:
            if tries_left and "Address already in use" in pod.log():
                continue
            raise
        return pod
    raise AssertionError("unreachable")
