"""The API in kubernetes mode on the rig: a real ``docjobs serve --backend kubernetes`` process
per test, in a fresh namespace, against the rig's kube-apiserver and MinIO."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from minio import Minio

from tests.conftest import Server
from tests.rig.fixtures import Cluster, cluster, namespace, wait_for  # noqa: F401
from tests.rig.kubeapi import ApiError, Kube

REPO = Path(__file__).resolve().parents[2]
CRD_NAME = "documentjobs.docjobs.io"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
PLANS = json.dumps(
    {"free": "10/minute", "starter": "30/minute", "pro": "60/minute", "business": "6000/minute"}
)


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> None:  # noqa: F811
    """The DocumentJob CRD, installed (or brought up to date) once per session."""
    api = cluster.api()
    body = yaml.safe_load((REPO / "crds" / "documentjob.yaml").read_text())
    try:
        current = api.get(f"{CRD_PATH}/{CRD_NAME}")
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        api.request("PUT", f"{CRD_PATH}/{CRD_NAME}", body)
    except ApiError as exc:
        if exc.status != 404:
            raise
        api.create(CRD_PATH, body)

    def established() -> bool:
        conditions = api.get(f"{CRD_PATH}/{CRD_NAME}").get("status", {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, 30, 0.1, what="the DocumentJob CRD to be established")


@pytest.fixture
def kube_server(
    cluster: Cluster,  # noqa: F811
    namespace: str,  # noqa: F811
    crd: None,
    tmp_path: Path,
) -> Iterator[Server]:
    srv = Server(
        tmp_path / "data",
        env={**cluster.env, "DOCJOBS_RATE_LIMITS__PLANS": PLANS},
        args=["--backend", "kubernetes", "--namespace", namespace],
    ).start()
    yield srv
    srv.stop()


@pytest.fixture
def kube(cluster: Cluster) -> Kube:  # noqa: F811
    return cluster.api()


@pytest.fixture
def s3(cluster: Cluster) -> Minio:  # noqa: F811
    return Minio(
        cluster.s3["endpoint"],
        access_key=cluster.s3["access_key"],
        secret_key=cluster.s3["secret_key"],
        secure=cluster.s3["secure"] == "true",
    )
