"""The API in kubernetes mode on the rig: a real ``docjobs serve --backend kubernetes`` process
per test, in a fresh namespace, against the rig's kube-apiserver and MinIO."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from minio import Minio

from docjobs.kube.client import KubeClient
from tests.conftest import BIN, Server
from tests.crds import install_crds
from tests.rig.fixtures import Cluster, cluster, namespace, wait_for  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
PLANS = json.dumps(
    {"free": "10/minute", "starter": "30/minute", "pro": "60/minute", "business": "6000/minute"}
)


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> None:  # noqa: F811
    """The DocumentJob and DocumentTemplate CRDs, installed (or updated) once per session."""
    install_crds(cluster.api())


@pytest.fixture
def api_env() -> dict[str, str]:
    """Extra environment of the API server; tests override it."""
    return {}


@pytest.fixture
def kube_server(
    cluster: Cluster,  # noqa: F811
    namespace: str,  # noqa: F811
    crd: None,
    tmp_path: Path,
    api_env: dict[str, str],
) -> Iterator[Server]:
    srv = Server(
        tmp_path / "data",
        env={**cluster.env, "DOCJOBS_RATE_LIMITS__PLANS": PLANS, **api_env},
        args=["--backend", "kubernetes", "--namespace", namespace],
    ).start()
    yield srv
    srv.stop()


@pytest.fixture
def kube(cluster: Cluster) -> KubeClient:  # noqa: F811
    return cluster.api()


@pytest.fixture
def s3(cluster: Cluster) -> Minio:  # noqa: F811
    return Minio(
        cluster.s3["endpoint"],
        access_key=cluster.s3["access_key"],
        secret_key=cluster.s3["secret_key"],
        secure=cluster.s3["secure"] == "true",
    )


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    log_path: Path

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"the operator exited:\n{self.log_path.read_text()[-4000:]}")


@pytest.fixture
def operator_env() -> dict[str, str]:
    """Extra environment of the operator; tests override it (webhooks, runner settings)."""
    return {}


@pytest.fixture
def operator(
    cluster: Cluster,  # noqa: F811
    namespace: str,  # noqa: F811
    crd: None,
    tmp_path: Path,
    operator_env: dict[str, str],
) -> Iterator[Operator]:
    api = cluster.api()
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(str(BIN / "docjobs"), "operator", "--namespace", namespace),
                *("--liveness-port", "0", "--metrics-port", "0"),
            ],
            env={**os.environ, **cluster.env, **operator_env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Operator(process, log_path)
    finally:
        # Delete the DocumentJobs while the operator runs: it removes its finalizers, so the
        # namespace can be deleted after the test.
        jobs = f"/apis/docjobs.io/v1alpha1/namespaces/{namespace}/documentjobs"
        api.delete(jobs)
        wait_for(lambda: not api.get(jobs)["items"], 60, what="DocumentJobs to be deleted")
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
