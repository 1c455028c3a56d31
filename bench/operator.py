"""The operator on the local rig: a burst of N one-page DocumentJobs.

    .venv/bin/python bench/operator.py [--jobs 50] [--operation convert|ocr.simple]

Uses the running rig (``scripts/local-cluster up``; started and stopped here if it is not
up). Creates a namespace, starts ``docjobs operator --namespace`` on it, uploads N one-page
inputs to MinIO, then creates the N DocumentJobs at once (8 client threads). Two watches
(runner Jobs, DocumentJobs) timestamp when each runner Job appears and when each
DocumentJob ends. Reports p50/p99 of created -> runner Job and created -> terminal, the
burst's wall time, and reconciles per second from the operator's own Prometheus counters.
Writes the numbers as JSON to bench/results/operator-<time>.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from docjobs.config import S3Settings  # noqa: E402
from docjobs.kube.client import KubeClient  # noqa: E402
from docjobs.storage.s3 import S3Store  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.operator.conftest import Jobs, install_crd  # noqa: E402
from tests.rig.fixtures import _read_env, _state_dir, local_cluster, wait_for  # noqa: E402

TERMINAL = ("Complete", "Failed", "Cancelled")
OPERATIONS: dict[str, dict[str, str]] = {
    "convert": {"kind": "convert", "sourceFormat": "text"},
    "ocr.simple": {"kind": "ocr.simple"},
}


class Stamps:
    """When a watch first showed each object in the state of interest."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def mark(self, name: str) -> None:
        with self.lock:
            self.seen.setdefault(name, time.monotonic())


def watch(
    api: KubeClient,
    path: str,
    stamps: Stamps,
    key: Callable[[dict], str | None],
    stop: threading.Event,
) -> None:
    while not stop.is_set():
        try:
            for event in api.watch(path, None, 5):
                if name := key(event.get("object") or {}):
                    stamps.mark(name)
                if stop.is_set():
                    return
        except Exception:  # the watch broke: open another
            time.sleep(0.1)


def runner_of(job: dict) -> str | None:
    return (job.get("metadata", {}).get("labels") or {}).get("docjobs.io/job")


def ended(resource: dict) -> str | None:
    phase = (resource.get("status") or {}).get("phase")
    return resource.get("metadata", {}).get("name") if phase in TERMINAL else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def reconciles(metrics_url: str) -> float:
    text = requests.get(metrics_url, timeout=5).text
    pattern = r"^docjobs_operator_reconciles_total\{[^}]*\} ([0-9.e+]+)$"
    return sum(float(m) for m in re.findall(pattern, text, re.M))


def serving(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    return f"{os.cpu_count()} cores ({model}), {memory} GiB RAM, Linux {platform.release()}"


def s3_of(env: dict[str, str]) -> dict[str, str]:
    """The rig's DOCJOBS_S3_ENDPOINT etc. as S3Settings fields."""
    prefix = "DOCJOBS_S3_"
    return {k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)}


def namespace_with_secret(api: KubeClient, s3: dict[str, str]) -> str:
    ns = f"bench-{uuid.uuid4().hex[:8]}"
    api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    wait_for(lambda: api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default"), 30)
    secret = {
        "endpoint": s3["endpoint"],
        "bucket": s3["bucket"],
        "accessKey": s3["access_key"],
        "secretKey": s3["secret_key"],
        "secure": s3["secure"],
    }
    api.create(
        f"/api/v1/namespaces/{ns}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "docjobs-s3"},
            "stringData": secret,
        },
    )
    return ns


def start_operator(
    env: dict[str, str],
    ns: str,
    metrics_port: int,
    log: Path,
    pending: bool,
    extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``docjobs operator`` on ``ns``; ``extra``: more of its environment (settings)."""
    s3_env = {f"DOCJOBS_S3__{k.upper()}": v for k, v in s3_of(env).items()}
    s3_env.update(extra or {})
    if pending:  # runner pods select a pool no node is in: they stay Pending, nothing runs
        nowhere = {"node_selector": {"docjobs.io/pool": "none"}}
        s3_env["DOCJOBS_OPERATOR__POOLS"] = json.dumps({"cpu": nowhere, "gpu": nowhere})
    command = [str(Path(sys.executable).parent / "docjobs"), "operator", "--namespace", ns]
    command += ["--liveness-port", "0", "--metrics-port", str(metrics_port)]
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            env={**os.environ, "KUBECONFIG": env["KUBECONFIG"], **s3_env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def one_page_input(operation: str) -> tuple[bytes, str]:
    if operation == "convert":
        return b"A one-page document.\n" * 20, "text/plain"
    from tests.docs import png_bytes, sentence_lines, text_image

    return png_bytes(text_image(sentence_lines(5, 4))), "image/png"


def burst(jobs: Jobs, resources: list[dict[str, Any]]) -> dict[str, float]:
    """Create all DocumentJobs at once; when each creation returned."""
    created: dict[str, float] = {}

    def create(resource: dict[str, Any]) -> None:
        jobs.api.create(jobs.path(), resource)
        created[resource["metadata"]["name"]] = time.monotonic()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, resources))
    return created


def prepare(env: dict[str, str], bench: str) -> tuple[KubeClient, S3Store, str, int, Path]:
    """The rig's API and object store, a fresh namespace with the runners' S3 Secret, a port
    for the operator's metrics and where its log goes (``bench/results/<bench>-<ns>.log``)."""
    api = KubeClient.from_environment(kubeconfig=env["KUBECONFIG"])
    install_crd(api)
    s3 = s3_of(env)
    ns = namespace_with_secret(api, s3)
    store = S3Store.from_settings(S3Settings(**{**s3, "secure": s3["secure"] == "true"}))
    log = REPO / "bench" / "results" / f"{bench}-{ns}.log"
    log.parent.mkdir(exist_ok=True)
    return api, store, ns, free_port(), log


def run(n: int, operation: str, env: dict[str, str], pending: bool) -> dict[str, Any]:
    api, store, ns, metrics_port, log = prepare(env, "operator")
    operator = start_operator(env, ns, metrics_port, log, pending)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        result = measure(api, store, ns, n, operation, metrics_url, pending)
        result["operator_cpu_seconds"] = round(cpu_seconds(operator.pid), 1)
        return result
    finally:
        operator.terminate()
        operator.wait(30)
        api.delete(f"/api/v1/namespaces/{ns}")


def measure(
    api: KubeClient,
    store: S3Store,
    ns: str,
    n: int,
    operation: str,
    metrics_url: str,
    pending: bool,
) -> dict[str, Any]:
    wait_for(lambda: serving(metrics_url), 30, 0.2, what="operator metrics")
    jobs = Jobs(api, store, ns)
    data, content_type = one_page_input(operation)
    resources = [jobs.prepare(OPERATIONS[operation], data, content_type) for _ in range(n)]

    runner_jobs, finished, stop = Stamps(), Stamps(), threading.Event()
    watches = [
        (f"/apis/batch/v1/namespaces/{ns}/jobs", runner_jobs, runner_of),
        (f"/apis/docjobs.io/v1alpha1/namespaces/{ns}/documentjobs", finished, ended),
    ]
    for path, stamps, key in watches:
        threading.Thread(target=watch, args=(api, path, stamps, key, stop), daemon=True).start()
    time.sleep(1)  # both watches open

    before = reconciles(metrics_url)
    start = time.monotonic()
    created = burst(jobs, resources)
    submit_seconds = time.monotonic() - start
    last = runner_jobs if pending else finished
    wait_for(lambda: len(last.seen) >= n, 3600, 0.2, what="the burst to be through")
    wall = max(last.seen.values()) - start
    done = reconciles(metrics_url) - before
    stop.set()
    phases = [jobs.status(name).get("phase") for name in created]

    to_job = [runner_jobs.seen[name] - t for name, t in created.items() if name in runner_jobs.seen]
    result: dict[str, Any] = {
        "jobs": n,
        "operation": operation,
        "mode": "pending pods (operator only)" if pending else "end to end",
        "phases": {p: phases.count(p) for p in sorted(set(map(str, phases)))},
        "submit_seconds": round(submit_seconds, 2),
        "to_job_p50": round(percentile(to_job, 0.5), 3),
        "to_job_p99": round(percentile(to_job, 0.99), 3),
        "wall_seconds": round(wall, 1),
        "reconciles": int(done),
        "reconciles_per_second": round(done / wall, 1),
        "machine": machine(),
    }
    if not pending:
        to_end = [finished.seen[name] - t for name, t in created.items()]
        result["to_terminal_p50"] = round(percentile(to_end, 0.5), 2)
        result["to_terminal_p99"] = round(percentile(to_end, 0.99), 2)
        result["jobs_per_second"] = round(n / wall, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--operation", choices=sorted(OPERATIONS), default="convert")
    parser.add_argument(
        "--pending",
        action="store_true",
        help="runner pods stay Pending (no node matches): the operator's own rate, no runners",
    )
    args = parser.parse_args()

    started_rig = local_cluster("status", 30).returncode != 0
    if started_rig and local_cluster("up", 3600).returncode != 0:
        sys.exit("scripts/local-cluster up failed")
    try:
        result = run(args.jobs, args.operation, _read_env(_state_dir() / "env"), args.pending)
    finally:
        if started_rig and os.environ.get("DOCJOBS_RIG_KEEP") != "1":
            local_cluster("down", 120)
    out = REPO / "bench" / "results" / f"operator-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
