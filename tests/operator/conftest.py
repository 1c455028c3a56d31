"""The operator on the rig: a real ``docjobs operator`` process per test, watching a fresh
namespace, whose runner Jobs run as local processes on the rig's kubelet."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from docjobs.backends.base import new_job_id
from docjobs.config import S3Settings
from docjobs.domain.models import InputRef, JobSpec, RetryPolicy
from docjobs.kube.client import KubeClient
from docjobs.kube.paths import core_path, documentjobs_path, jobs_path
from docjobs.kube.resources import to_resource
from docjobs.storage.s3 import S3Store
from tests.conftest import BIN
from tests.crds import install_crds
from tests.rig.fixtures import Cluster, cluster, namespace, wait_for  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "documentjob.yaml"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
TERMINAL = ("Complete", "Failed", "Cancelled")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_crd(api: KubeClient) -> None:
    """crds/documentjob.yaml, created or brought up to date, then Established."""
    install_crds(api, ("documentjob.yaml",))


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> None:  # noqa: F811
    install_crd(cluster.api())


def s3_env(cluster: Cluster) -> dict[str, str]:  # noqa: F811
    """The rig exports DOCJOBS_S3_ENDPOINT etc.; settings read DOCJOBS_S3__ENDPOINT."""
    s3 = cluster.s3
    return {
        "DOCJOBS_S3__ENDPOINT": s3["endpoint"],
        "DOCJOBS_S3__BUCKET": s3["bucket"],
        "DOCJOBS_S3__ACCESS_KEY": s3["access_key"],
        "DOCJOBS_S3__SECRET_KEY": s3["secret_key"],
        "DOCJOBS_S3__SECURE": s3["secure"],
    }


@pytest.fixture(scope="session")
def store(cluster: Cluster) -> S3Store:  # noqa: F811
    s3 = cluster.s3
    return S3Store.from_settings(
        S3Settings(
            endpoint=s3["endpoint"],
            bucket=s3["bucket"],
            access_key=s3["access_key"],
            secret_key=s3["secret_key"],
            secure=s3["secure"] == "true",
        )
    )


@dataclass
class Operator:
    """``docjobs operator --namespace NS`` as a child process; killable and restartable."""

    cluster: Cluster
    namespace: str
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    liveness_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            **s3_env(self.cluster),
            **self.extra_env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(str(BIN / "docjobs"), "operator", "--namespace", self.namespace),
                    *("--liveness-port", str(self.liveness_port)),
                    *("--metrics-port", str(self.metrics_port)),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._live, 30, 0.1, what=f"operator liveness (log {self.log_path})")
        return self

    def _live(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log()
        try:
            return requests.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies under the operator."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def ns(namespace: str, crd: None) -> str:  # noqa: F811
    """A fresh namespace; no S3 Secret: runner pods get presigned URLs only."""
    return namespace


@pytest.fixture
def make_operator(
    cluster: Cluster,  # noqa: F811
    ns: str,
    tmp_path: Path,
) -> Iterator[Callable[..., Operator]]:
    started: list[Operator] = []

    def make(**env: str) -> Operator:
        operator = Operator(cluster, ns, tmp_path / f"operator-{len(started)}.log", env)
        started.append(operator)
        return operator.start()

    yield make
    for operator in started:
        operator.stop()


@pytest.fixture
def operator(make_operator: Callable[..., Operator]) -> Operator:
    return make_operator()


# --- DocumentJobs ----------------------------------------------------------------------------


class Jobs:
    """Submit DocumentJobs as the API would (input in S3, then the resource) and watch them."""

    def __init__(self, api: KubeClient, store: S3Store, ns: str) -> None:
        self.api = api
        self.store = store
        self.ns = ns

    def submit(
        self,
        operation: dict[str, Any],
        data: bytes,
        content_type: str,
        file_name: str = "input",
        retry: RetryPolicy | None = None,
        tenant: str = "acme",
        **fields: Any,
    ) -> str:
        """Upload the input, create the DocumentJob; its name. ``fields``: of JobSpec."""
        resource = self.prepare(operation, data, content_type, file_name, retry, tenant, **fields)
        self.api.create(self.path(), resource)
        return str(resource["metadata"]["name"])

    def prepare(
        self,
        operation: dict[str, Any],
        data: bytes,
        content_type: str,
        file_name: str = "input",
        retry: RetryPolicy | None = None,
        tenant: str = "acme",
        **fields: Any,
    ) -> dict[str, Any]:
        """Upload the input; the DocumentJob to create for it."""
        job_id = new_job_id()
        key = f"{tenant}/{job_id}/input"
        self.store.put_bytes(key, data, content_type)
        spec = JobSpec.model_validate(
            {
                "job_id": job_id,
                "tenant": tenant,
                "operation": operation,
                "input": InputRef(
                    key=key,
                    file_name=file_name,
                    content_type=content_type,
                    sha256=hashlib.sha256(data).hexdigest(),
                    size=len(data),
                ),
                "retry_policy": retry or RetryPolicy(),
                "created_at": datetime.now(UTC),
                **fields,
            }
        )
        return to_resource(spec, self.ns)

    def path(self, name: str = "") -> str:
        return documentjobs_path(self.ns, name or None)

    def get(self, name: str) -> dict[str, Any]:
        return self.api.get(self.path(name))

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def wait(self, name: str, phases: tuple[str, ...] = TERMINAL, timeout: float = 90) -> dict:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("phase") in phases else None

        return wait_for(reached, timeout, 0.1, what=f"{name} to reach {phases}")

    def runner_jobs(self, name: str | None = None) -> list[dict[str, Any]]:
        labels = f"docjobs.io/job={name}" if name else "docjobs.io/job"
        return self.api.items(jobs_path(self.ns), labelSelector=labels)

    def pods(self, name: str, attempt: int | None = None) -> list[dict[str, Any]]:
        labels = f"docjobs.io/job={name}"
        if attempt is not None:
            labels += f",docjobs.io/attempt={attempt}"
        return self.api.items(core_path(self.ns, "pods"), labelSelector=labels)

    def running_pod(self, name: str, attempt: int, timeout: float = 60) -> dict[str, Any]:
        def running() -> dict[str, Any] | None:
            pods = [p for p in self.pods(name, attempt) if p["status"].get("phase") == "Running"]
            return pods[0] if pods else None

        return wait_for(running, timeout, 0.05, what=f"a running pod of {name} attempt {attempt}")


@pytest.fixture
def jobs(cluster: Cluster, store: S3Store, ns: str) -> Jobs:  # noqa: F811
    return Jobs(cluster.api(), store, ns)
