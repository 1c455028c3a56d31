"""End to end in kubernetes mode: API -> DocumentJob -> operator -> Job -> pod on the rig's
kubelet -> runner -> MinIO -> API, driven by seed 000's own polling client."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.test_seed000_workflow import SEED_CLIENT
from tests.conftest import BIN
from tests.docs import pdf_with_pages
from tests.rig.fixtures import Cluster, wait_for


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    log_path: Path

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"the operator exited:\n{self.log_path.read_text()[-4000:]}")


@pytest.fixture
def operator(cluster: Cluster, namespace: str, crd: None, tmp_path: Path) -> Iterator[Operator]:
    api = cluster.api()
    s3 = cluster.s3
    api.create(
        f"/api/v1/namespaces/{namespace}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "docjobs-s3"},
            "stringData": {
                "endpoint": s3["endpoint"],
                "bucket": s3["bucket"],
                "accessKey": s3["access_key"],
                "secretKey": s3["secret_key"],
                "secure": s3["secure"],
            },
        },
    )
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(str(BIN / "docjobs"), "operator", "--namespace", namespace),
                *("--liveness-port", "0", "--metrics-port", "0"),
            ],
            env={**os.environ, **cluster.env},
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


def test_seed_polling_workflow_on_kubernetes(
    kube_server, operator: Operator, tmp_path: Path
) -> None:
    pdf, texts = pdf_with_pages(3, seed=7)
    document = tmp_path / "scanned-3-pages.pdf"
    document.write_bytes(pdf)
    script = tmp_path / "client.py"
    key = kube_server.key("acme")
    script.write_text(
        SEED_CLIENT.format(key=key, base=kube_server.base, path=document, name=document.name)
    )

    output = tmp_path / "client.out"
    with output.open("wb") as out:
        client = subprocess.Popen([sys.executable, str(script)], stdout=out, stderr=out)
    deadline = time.monotonic() + 300
    try:
        while client.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"the seed client timed out:\n{output.read_text()[-2000:]}")
            operator.check_alive()
            time.sleep(0.5)
    finally:
        client.kill()
        client.wait()
    printed = output.read_text()

    assert client.returncode == 0, printed
    assert "Job complete!" in printed
    words = int(re.search(r"Extracted text \((\d+) words\)", printed).group(1))
    assert words == sum(len(line.split()) for page in texts for line in page)
