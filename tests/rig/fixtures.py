"""pytest fixtures for tests that need the local Kubernetes rig.

This is not a conftest, so pytest never loads it by itself: only test
directories that import it pay for the rig. In e.g. tests/operator/conftest.py:

    from tests.rig.fixtures import cluster, namespace  # noqa: F401

(`pytest_plugins = [...]` is only honoured in the rootdir conftest.py.)

`cluster` (session): runs `scripts/local-cluster up` once (builds the binaries
on first use, ~10 minutes cold). A rig started by a fixture is stopped by the
last test session using it, unless DOCJOBS_RIG_KEEP=1; one started by hand is
left alone. `namespace` (function): a fresh namespace per test, deleted after.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from docjobs.kube.client import KubeClient, KubeError
from tests.timeouts import run_outside_test_timeout

T = TypeVar("T")
RIG_DIR = Path(__file__).resolve().parent
REPO_ROOT = RIG_DIR.parent.parent
LOCAL_CLUSTER = REPO_ROOT / "scripts" / "local-cluster"
UP_TIMEOUT = 3600  # a cold build of the Kubernetes binaries takes a while


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def _state_dir() -> Path:
    return Path(os.environ.get("DOCJOBS_RIG_STATE", REPO_ROOT / ".local-cluster")).resolve()


def wait_for(
    fn: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.25, what: str = ""
) -> T:
    """Poll fn() until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except KubeError as e:
            last = e
        time.sleep(interval)
    pytest.fail(
        f"timed out after {timeout:.0f}s waiting for {what or fn}"
        + (f" (last error: {last})" if last else "")
    )


@dataclass(frozen=True)
class Cluster:
    repo_root: Path
    state_dir: Path
    kubeconfig: Path
    k8s_version: str
    s3: dict[str, str]  # endpoint (host:port), bucket, access_key, secret_key, secure ("false")
    env: dict[str, str]  # the variables of .local-cluster/env (KUBECONFIG, DOCJOBS_S3_*)

    def api(self) -> KubeClient:
        return KubeClient.from_environment(kubeconfig=str(self.kubeconfig))

    def pod_log(self, namespace: str, name: str) -> str:
        """What the pod's process wrote to stdout/stderr so far."""
        path = self.state_dir / "pods" / f"{namespace}_{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_job_finished(
        self, namespace: str, name: str, timeout: float = 120.0
    ) -> dict[str, Any]:
        """Wait for a Job's Complete or Failed condition; returns the Job."""
        api = self.api()

        def finished() -> dict[str, Any] | None:
            job = api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
            for c in job.get("status", {}).get("conditions", []):
                if c["type"] in ("Complete", "Failed") and c["status"] == "True":
                    return job
            return None

        return wait_for(finished, timeout, what=f"job {namespace}/{name} to finish")

    def wait_pod_finished(self, namespace: str, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for a pod to reach phase Succeeded or Failed; returns the Pod."""
        api = self.api()

        def finished() -> dict[str, Any] | None:
            pod = api.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
            return pod if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

        return wait_for(finished, timeout, what=f"pod {namespace}/{name} to finish")


def _read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export ") :].split("=", 1)
            env[key] = value
    return env


def build_outside_test_timeout() -> None:
    """Build the binaries if missing: the one path every fixture that needs them takes.
    ``make test`` builds them before pytest starts (``make rig``); this covers a pytest run
    by hand. A cold build takes longer than the per-test pytest-timeout, so its
    (signal-method) alarm is paused for the build only and re-armed with what was left."""
    run_outside_test_timeout([str(RIG_DIR / "build.sh")], UP_TIMEOUT, "tests/rig/build.sh")


def kubectl() -> str:
    """The real kubectl: the machine's, else the one ``tests/rig/build.sh`` built."""
    found = shutil.which("kubectl")
    if found:
        return found
    out = subprocess.run([str(RIG_DIR / "build.sh"), "--print"], text=True, stdout=subprocess.PIPE)
    dirs = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return str(Path(dirs["KUBECTL_BIN"]) / "kubectl")


def kubectl_table(cluster: Cluster, *args: str) -> list[dict[str, str]]:
    """``kubectl *args``'s table as dicts, cut at the header's column starts (values may
    hold spaces)."""
    shown = subprocess.run(
        [kubectl(), *args],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    header, *rows = shown.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    cuts = list(zip(names, starts, [*starts[1:], None], strict=True))
    return [{n: row[s:e].strip() for n, s, e in cuts} for row in rows]


def _can_build() -> str:
    """Empty if the rig can start here, else why not (the test is skipped)."""
    if _truthy("DOCJOBS_RIG_SKIP"):
        return "DOCJOBS_RIG_SKIP is set"
    out = subprocess.run([str(RIG_DIR / "build.sh"), "--print"], text=True, stdout=subprocess.PIPE)
    dirs = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    built = all(Path(dirs.get(k, "/nonexistent")).is_dir() for k in ("K8S_BIN", "MINIO_BIN"))
    if not built and shutil.which("go") is None:
        return "rig binaries are not built and there is no Go toolchain to build them"
    return ""


def local_cluster(
    command: str, timeout: float = 300, state_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``scripts/local-cluster COMMAND`` for the rig in ``state_dir`` (default: the one
    ``DOCJOBS_RIG_STATE`` names, else the shared ``.local-cluster``)."""
    # The kubelet runs under this interpreter when it has `kubernetes`, and
    # pods find this interpreter's bin dir (venv: docjobs, python3) first.
    env = dict(os.environ)
    if state_dir is not None:
        env["DOCJOBS_RIG_STATE"] = str(state_dir)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}"
    if importlib.util.find_spec("kubernetes") is not None:
        env.setdefault("PYTHON", sys.executable)
    env["DOCJOBS_RIG_AUTO_DOWN"] = "1"  # recorded by `up` if this call starts the rig
    return subprocess.run(
        [str(LOCAL_CLUSTER), command],
        cwd=REPO_ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
    )


def cluster_at(state: Path) -> Cluster:
    """The running rig whose state directory is ``state``."""
    env = _read_env(state / "env")
    return Cluster(
        repo_root=REPO_ROOT,
        state_dir=state,
        kubeconfig=Path(env["KUBECONFIG"]),
        k8s_version=json.loads((state / "state.json").read_text())["k8s_version"],
        s3={
            "endpoint": env["DOCJOBS_S3_ENDPOINT"],
            "bucket": env["DOCJOBS_S3_BUCKET"],
            "access_key": env["DOCJOBS_S3_ACCESS_KEY"],
            "secret_key": env["DOCJOBS_S3_SECRET_KEY"],
            "secure": env["DOCJOBS_S3_SECURE"],
        },
        env=env,
    )


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    state = _state_dir()
    state.mkdir(parents=True, exist_ok=True)
    # Every test session using the rig holds a shared lock on users.lock; at
    # the end, the one that gets it exclusively is the last user and stops a
    # rig that a fixture started (never one started by hand).
    users = open(state / "users.lock", "w")  # noqa: SIM115 - held for the session
    fcntl.flock(users, fcntl.LOCK_SH)
    try:
        if local_cluster("status", 30).returncode != 0:
            if why := _can_build():
                pytest.skip(f"local cluster rig unavailable: {why}")
            build_outside_test_timeout()
        up = local_cluster("up", 300)
        if up.returncode != 0:
            pytest.fail(f"scripts/local-cluster up failed:\n{up.stdout}", pytrace=False)
        yield cluster_at(state)
    finally:
        fcntl.flock(users, fcntl.LOCK_UN)
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another session still uses the rig; the last one stops it
        else:
            try:
                auto = json.loads((state / "state.json").read_text()).get("auto_down", False)
            except (OSError, ValueError):
                auto = False  # never started
            if auto and not _truthy("DOCJOBS_RIG_KEEP"):
                local_cluster("down", 120)
        users.close()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    api = cluster.api()
    name = f"test-{uuid.uuid4().hex[:10]}"
    api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    # Pod admission rejects pods until the serviceaccount controller has made
    # `default`; waiting here keeps Job controller back-off out of tests.
    wait_for(
        lambda: api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        30,
        what=f"serviceaccount default in {name}",
    )
    yield name
    try:
        api.delete(f"/api/v1/namespaces/{name}")
    except KubeError as e:
        if e.status != 404:
            raise
