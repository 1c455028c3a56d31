"""Memory of the API and the operator with the number of finished DocumentJobs.

    .venv/bin/python bench/finished_jobs.py [--jobs 200 3000] [--archive-after 1]

On the rig (``scripts/local-cluster up``; started and stopped here if it is not up): a fresh
namespace with ``docjobs serve --backend kubernetes`` and ``docjobs operator`` on it. Finished
DocumentJobs are created straight on the API server, as the operator leaves one (the
resource, then a Complete status with a result), 8 at a time, up to each count in turn
(with ``--step N``, N at a time, each lot archived before the next: jobs that end spread
over time rather than in one burst).
After each count, once the operator has archived them (``--archive-after`` seconds after
their end; 0: archiving off, they stay until their TTL), it reads the RSS of the API and of
the operator, the DocumentJobs left in the API server, and the p50/p99 of
``GET /api/v1/jobs/{id}`` over 200 of the finished jobs (one client, sequential). Prints the
ratios of the largest count to the smallest and writes everything as JSON to
``bench/results/finished-jobs-<time>.json``. ``--probe FILE`` runs the operator under
``bench/peak_probe.py``: its RSS and asyncio tasks over time, and what it holds at its peak.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from docjobs.backends.base import new_job_id  # noqa: E402
from docjobs.domain.models import JobSpec  # noqa: E402
from docjobs.kube.claims import Claim  # noqa: E402
from docjobs.kube.client import KubeClient, KubeError  # noqa: E402
from docjobs.kube.paths import documentjobs_path  # noqa: E402
from docjobs.kube.resources import to_resource  # noqa: E402
from tests.conftest import BIN, Server  # noqa: E402
from tests.crds import install_crds  # noqa: E402
from tests.rig.fixtures import _state_dir, cluster_at, local_cluster, wait_for  # noqa: E402

TENANT = "bench"
READS = 200
PORTS = ("--liveness-port", "0", "--metrics-port", "0")


def finished_job(ns: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A DocumentJob and the status the operator writes when it completes."""
    job_id = new_job_id()
    now = datetime.now(UTC).isoformat()
    spec = JobSpec.model_validate(
        {
            "job_id": job_id,
            "tenant": TENANT,
            "operation": {"kind": "convert", "sourceFormat": "text"},
            "input": {
                "key": f"{TENANT}/{job_id}/input",
                "file_name": "letter.txt",
                "content_type": "text/plain",
                "sha256": "0" * 64,
                "size": 420,
            },
            "created_at": now,
        }
    )
    result = {"key": f"{TENANT}/{job_id}/result.pdf", "contentType": "application/pdf"}
    # Claimed by nobody for a while: the operator leaves it alone until it is Complete.
    claim = Claim("bench", datetime.now(UTC), 600).annotations()
    status = {
        "phase": "Complete",
        "attempts": 1,
        "startedAt": now,
        "completedAt": now,
        "message": "Job completed",
        "progress": {"pagesDone": 1, "pagesTotal": 1},
        "result": {**result, "size": 14_000},
        "duration": "1s",
    }
    resource = to_resource(spec, ns)
    resource["metadata"]["annotations"] = claim
    return resource, status


def create_finished(api: KubeClient, ns: str, count: int) -> list[str]:
    def create(_: int) -> str:
        resource, status = finished_job(ns)
        path = documentjobs_path(ns, resource["metadata"]["name"])
        current = api.create(documentjobs_path(ns), resource)
        while True:
            try:
                api.replace(f"{path}/status", {**current, "status": status})
                return str(resource["spec"]["jobId"])
            except KubeError as exc:
                if not exc.conflict:
                    raise
                current = api.get(path)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(create, range(count)))


def rss_mib(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def read_times(server: Server, key: str, job_ids: list[str]) -> dict[str, float]:
    headers = {"X-API-Key": key}
    took: list[float] = []
    with requests.Session() as http:
        for job_id in random.Random(1).sample(job_ids, min(READS, len(job_ids))):
            start = time.perf_counter()
            answer = http.get(f"{server.base}/api/v1/jobs/{job_id}", headers=headers, timeout=10)
            took.append(time.perf_counter() - start)
            assert answer.status_code == 200, answer.text
    took.sort()
    return {
        "read_p50_ms": round(took[len(took) // 2] * 1000, 1),
        "read_p99_ms": round(took[min(int(len(took) * 0.99), len(took) - 1)] * 1000, 1),
    }


def run(counts: list[int], archive_after: float, step: int, probe: Path | None) -> dict[str, Any]:
    cluster = cluster_at(_state_dir())
    api = cluster.api()
    install_crds(api)
    ns = f"bench-{new_job_id()[4:12].lower()}"
    api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    scratch = Path(tempfile.mkdtemp(prefix="docjobs-finished-"))
    server = Server(scratch / "api", env=cluster.env, args=["--backend", "kubernetes"])
    server.args += ["--namespace", ns]
    operator_env = {"DOCJOBS_OPERATOR__ARCHIVE_AFTER_SECONDS": str(archive_after)}
    command = [str(BIN / "docjobs")]
    if probe is not None:  # diagnosis: where the operator's peak is held (bench/peak_probe.py)
        command = [sys.executable, str(REPO / "bench" / "peak_probe.py"), str(probe)]
    with (scratch / "operator.log").open("wb") as log:
        operator = subprocess.Popen(
            [*command, "operator", "--namespace", ns, *PORTS],
            env={**os.environ, **cluster.env, **operator_env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server.start()
    try:
        key = server.key(TENANT)
        path = documentjobs_path(ns)
        steps: list[dict[str, Any]] = []
        job_ids: list[str] = []
        if probe is not None:
            time.sleep(10)  # started and listed: the baseline
            operator.send_signal(signal.SIGUSR1)
            time.sleep(2)
        for count in counts:
            started = time.perf_counter()
            while len(job_ids) < count:
                job_ids += create_finished(api, ns, min(step, count - len(job_ids)))
                if archive_after > 0:
                    wait_for(lambda: not api.get(path)["items"], 1800, 1, what="jobs archived")
            took = time.perf_counter() - started
            time.sleep(5)  # the caches settle
            relist = time.perf_counter()
            left = len(api.get(path)["items"])
            steps.append(
                {
                    "finished_jobs": count,
                    "created_and_archived_seconds": round(took, 1),
                    "documentjobs_in_api_server": left,
                    "relist_seconds": round(time.perf_counter() - relist, 3),
                    "api_rss_mib": rss_mib(server.process.pid),  # type: ignore[union-attr]
                    "operator_rss_mib": rss_mib(operator.pid),
                    **read_times(server, key, job_ids),
                }
            )
            print(json.dumps(steps[-1]), flush=True)
        first, last = steps[0], steps[-1]
        ratios = {
            name: round(last[name] / first[name], 2)
            for name in ("api_rss_mib", "operator_rss_mib", "read_p99_ms")
        }
        return {
            "archive_after_seconds": archive_after,
            "step": step,
            "steps": steps,
            "ratios": ratios,
        }
    finally:
        server.stop()
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:  # still draining a backlog of events: not measured
            operator.kill()
            operator.wait()
        api.delete(f"/api/v1/namespaces/{ns}")


def main() -> None:
    # A shared hold on the rig, as each test session takes: the last to leave stops it.
    users = (_state_dir() / "users.lock").open("w")
    fcntl.flock(users, fcntl.LOCK_SH)
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, nargs="+", default=[200, 3000])
    parser.add_argument("--archive-after", type=float, default=1.0)
    parser.add_argument(
        "--step",
        type=int,
        default=10**9,
        help="jobs created at a time, each lot archived before the next (default: all at once)",
    )
    parser.add_argument(
        "--probe",
        type=Path,
        help="run the operator with bench/peak_probe.py; what it holds at its peak goes here",
    )
    args = parser.parse_args()
    started_rig = local_cluster("status", 30).returncode != 0
    if started_rig and local_cluster("up", 3600).returncode != 0:
        sys.exit("scripts/local-cluster up failed")
    try:
        result = run(sorted(args.jobs), args.archive_after, args.step, args.probe)
    finally:
        if started_rig and os.environ.get("DOCJOBS_RIG_KEEP") != "1":
            local_cluster("down", 120)
    out = REPO / "bench" / "results" / f"finished-jobs-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["ratios"], indent=2))


if __name__ == "__main__":
    main()
