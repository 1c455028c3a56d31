"""Usage in Kubernetes mode on the rig: the operator records each ended job in MinIO, the API
answers each tenant its own, and an operator killed with -9 and started again (which sees
every ended job again, then archives them) changes nothing; ``docjobs usage`` reads the
bucket."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from docjobs.kube.client import KubeClient
from docjobs.kube.paths import documentjobs_path
from tests.conftest import BIN, Server
from tests.kube.conftest import Operator
from tests.rig.fixtures import Cluster, wait_for

JOBS = {"meter-a": 3, "meter-b": 1}


def _operator(cluster: Cluster, namespace: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                *(str(BIN / "docjobs"), "operator", "--namespace", namespace),
                *("--liveness-port", "0", "--metrics-port", "0"),
            ],
            env={**os.environ, **cluster.env, "DOCJOBS_OPERATOR__ARCHIVE_AFTER_SECONDS": "2"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _usage(server: Server, key: str) -> dict[str, Any]:
    answer = requests.get(f"{server.base}/api/v1/usage", headers={"X-API-Key": key}, timeout=10)
    assert answer.status_code == 200, answer.text
    totals: dict[str, Any] = answer.json()["totals"]
    return totals


def test_usage_is_recorded_once_by_the_operator_across_a_kill(
    kube_server: Server,
    operator: Operator,
    cluster: Cluster,
    namespace: str,
    kube: KubeClient,
    tmp_path: Path,
) -> None:
    keys = {tenant: kube_server.key(tenant) for tenant in JOBS}
    sent: dict[str, list[tuple[str, int]]] = {tenant: [] for tenant in JOBS}
    for tenant, count in JOBS.items():
        for n in range(count):
            content = f"{tenant} counts letter {n}"
            accepted = requests.post(
                f"{kube_server.base}/api/v1/convert/text-to-pdf?async=true",
                headers={"X-API-Key": keys[tenant]},
                data={"content": content},
                timeout=30,
            )
            assert accepted.status_code == 202, accepted.text
            sent[tenant].append((accepted.json()["job_id"], len(content.encode())))

    def recorded() -> bool:
        operator.check_alive()
        return all(_usage(kube_server, keys[t])["jobs"] == n for t, n in JOBS.items())

    wait_for(recorded, 180, 0.2, what="every job's usage recorded")
    before = {tenant: _usage(kube_server, keys[tenant]) for tenant in JOBS}
    for tenant, jobs in sent.items():
        assert before[tenant]["complete"] == len(jobs)
        assert before[tenant]["input_bytes"] == sum(size for _, size in jobs)
        assert before[tenant]["pages_by_tier"] == {"convert": len(jobs)}  # a page each

    operator.process.kill()
    operator.process.wait(10)
    restarted = _operator(cluster, namespace, tmp_path / "operator-again.log")
    try:
        # The new operator sees every ended job again, then archives them all.
        documentjobs = documentjobs_path(namespace)
        wait_for(lambda: not kube.get(documentjobs)["items"], 90, 0.5, what="jobs archived")
        assert {tenant: _usage(kube_server, keys[tenant]) for tenant in JOBS} == before

        today = datetime.now(UTC).date().isoformat()
        span = ["--namespace", namespace, "--from", today, "--to", today]
        printed = subprocess.run(
            [str(BIN / "docjobs"), "usage", "--backend", "kubernetes", *span],
            env={**os.environ, **cluster.env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        restarted.terminate()
        restarted.wait(30)
    rows = list(csv.DictReader(io.StringIO(printed)))
    assert {row["tenant"]: int(row["jobs"]) for row in rows} == JOBS
