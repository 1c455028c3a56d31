"""A burst of one-page conversions in Kubernetes mode with worker pods, against embedded mode.

    .venv/bin/python bench/kube_volume.py [--jobs 40] [--without-workers]

Both modes on the same machine, through the same API calls: ``--jobs`` async Markdown ->
PDF conversions (each document distinct) sent at once from 8 client threads, timed from
the first submission until the job listing counts them all complete (polled every 50 ms);
also when the last submission was answered, which bounds what the workers can show.

  * **embedded**: ``docjobs serve`` with 2 runner workers.
  * **kubernetes + workers**: on the running rig (``scripts/local-cluster up``; started and
    stopped here if it is not up), a fresh namespace with ``docjobs serve --backend
    kubernetes`` (its sync workers off: every job here is async), ``docjobs operator``
    (``DOCJOBS_OPERATOR__CLAIM_GRACE_SECONDS=10``) and one ``docjobs workers`` pod of 2
    warm processes. Runner Jobs created during the burst are counted.
  * ``--without-workers``: also kubernetes mode as it is without them (no worker pod, no
    grace): a runner pod per document.

CPU-seconds per job are the user + system time of the docjobs processes of each mode and
their children (API, operator, worker pod, warm runners) over the burst; runner pods (the
rig's kubelet runs them as its own children) are not in it, so the case without workers
under-counts. Writes the numbers as JSON to bench/results/kube-volume-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.operator import machine, prepare, s3_of, start_operator  # noqa: E402
from bench.volume import timed_burst  # noqa: E402
from docjobs.kube.paths import jobs_path  # noqa: E402
from tests.conftest import BIN, Server, free_port  # noqa: E402
from tests.rig.fixtures import _read_env, _state_dir, local_cluster, wait_for  # noqa: E402

PLANS = json.dumps({"business": "60000/minute", "free": "10/minute"})
GRACE_SECONDS = 10


def document(n: int) -> str:
    """A one-page Markdown report, distinct for every ``n``."""
    rows = "\n".join(f"| region {i} | {n * 7 + i} |" for i in range(8))
    return (
        f"# Quarterly report {n}\n\n"
        + "Revenue grew in every region, as the table shows.\n\n" * 6
        + f"| region | units |\n|---|---|\n{rows}\n"
    )


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and their living children so far."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in tree:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
    return total


class SeenJobs:
    """The runner Jobs that existed at any time while it looked (every 0.2 s): the operator
    deletes a runner Job once its DocumentJob has ended, so one listing at the end misses
    them."""

    def __init__(self, names: Callable[[], set[str]]) -> None:
        self.names = names
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._look, daemon=True)

    def _look(self) -> None:
        while True:
            self.seen |= self.names()
            if self._stop.wait(0.2):
                return

    def __enter__(self) -> SeenJobs:
        self.seen |= self.names()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seen |= self.names()


def measure(
    name: str, server: Server, pids: list[int], n: int, runner_jobs: Callable[[], set[str]]
) -> dict[str, Any]:
    warm = server.key("warm", "business")
    timed_burst(server, warm, [document(-1 - i) for i in range(4)])  # engines and routes loaded
    before_jobs = runner_jobs()
    before = cpu_seconds(pids)
    with SeenJobs(runner_jobs) as seen:
        docs = [document(i) for i in range(n)]
        seconds, submitted = timed_burst(server, server.key("burst", "business"), docs)
    cpu = cpu_seconds(pids) - before
    return {
        "mode": name,
        "jobs": n,
        "seconds": round(seconds, 2),
        "jobs_per_second": round(n / seconds, 2),
        "submitted_seconds": round(submitted, 2),
        "cpu_seconds_per_job": round(cpu / n, 3),
        "runner_jobs": len(seen.seen - before_jobs),
    }


def embedded(n: int, scratch: Path) -> dict[str, Any]:
    env = {"DOCJOBS_RUNNER__CONCURRENCY": "2", "DOCJOBS_RATE_LIMITS__PLANS": PLANS}
    server = Server(scratch / "embedded", env=env).start()
    try:
        assert server.process is not None
        return measure("embedded", server, [server.process.pid], n, set)
    finally:
        server.stop()


def kubernetes(n: int, rig: dict[str, str], scratch: Path, workers: bool) -> dict[str, Any]:
    api, _, ns, metrics_port, log = prepare(rig, "kube-volume")
    s3 = {f"DOCJOBS_S3__{k.upper()}": v for k, v in s3_of(rig).items()}
    grace = {"DOCJOBS_OPERATOR__CLAIM_GRACE_SECONDS": str(GRACE_SECONDS if workers else 0)}
    processes: list[subprocess.Popen[bytes]] = []
    server: Server | None = None
    try:
        processes.append(start_operator(rig, ns, metrics_port, log, False, grace))
        if workers:
            port = free_port()
            with log.with_suffix(".workers.log").open("wb") as out:
                pod = subprocess.Popen(
                    [str(BIN / "docjobs"), "workers", "--namespace", ns, "--port", str(port)],
                    env={
                        **os.environ,
                        "KUBECONFIG": rig["KUBECONFIG"],
                        **s3,
                        "DOCJOBS_WORKERS__CONCURRENCY": "2",
                    },
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes.append(pod)
            url = f"http://127.0.0.1:{port}/readyz"
            wait_for(lambda: _ok(url), 120, 0.2, what="the worker pod ready")
        env = {
            "KUBECONFIG": rig["KUBECONFIG"],
            **s3,
            "DOCJOBS_RATE_LIMITS__PLANS": PLANS,
            "DOCJOBS_KUBERNETES__SYNC_WORKERS": "0",
        }
        server = Server(
            scratch / f"kube-{ns}", env=env, args=["--backend", "kubernetes", "--namespace", ns]
        ).start(120)
        assert server.process is not None
        pids = [server.process.pid, *(p.pid for p in processes)]
        name = "kubernetes + workers" if workers else "kubernetes, runner pods"
        path = jobs_path(ns)
        return measure(
            name, server, pids, n, lambda: {j["metadata"]["name"] for j in api.items(path)}
        )
    finally:
        if server is not None:
            server.stop()
        for process in reversed(processes):
            process.terminate()
            process.wait(60)
        api.delete(f"/api/v1/namespaces/{ns}")


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--without-workers", action="store_true")
    args = parser.parse_args()

    started_rig = local_cluster("status", 30).returncode != 0
    if started_rig and local_cluster("up", 3600).returncode != 0:
        sys.exit("scripts/local-cluster up failed")
    rows: list[dict[str, Any]] = []
    try:
        rig = _read_env(_state_dir() / "env")
        with tempfile.TemporaryDirectory(prefix="kube-volume-") as scratch:
            cases: list[Callable[[], dict[str, Any]]] = [
                lambda: embedded(args.jobs, Path(scratch)),
                lambda: kubernetes(args.jobs, rig, Path(scratch), workers=True),
            ]
            if args.without_workers:
                cases.append(lambda: kubernetes(args.jobs, rig, Path(scratch), workers=False))
            for case in cases:
                before = load()
                row = case()
                row["load"] = f"{before:.1f}-{load():.1f}"
                rows.append(row)
    finally:
        if started_rig and os.environ.get("DOCJOBS_RIG_KEEP") != "1":
            local_cluster("down", 120)
    base = rows[0]["jobs_per_second"]
    print("| mode | jobs/s | all submitted after | CPU-s/job | runner Jobs | load | / embedded |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["jobs_per_second"] / base
        print(
            f"| {row['mode']} | {row['jobs_per_second']} | {row['submitted_seconds']} s |"
            f" {row['cpu_seconds_per_job']} |"
            f" {row['runner_jobs']} | {row['load']} | {ratio:.2f}x |"
        )
    result = {"rows": rows, "machine": machine()}
    out = REPO / "bench" / "results" / f"kube-volume-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
