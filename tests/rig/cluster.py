"""Start/stop the local Kubernetes rig: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, MinIO and the process kubelet, all on
loopback, all state under <repo>/.local-cluster/.

Used through scripts/local-cluster (up | down | status). Stdlib only, so `down`
works even where the kubernetes package is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pki
import s3

RIG_DIR = Path(__file__).resolve().parent
REPO_ROOT = RIG_DIR.parent.parent
STATE_DIR = Path(os.environ.get("DOCJOBS_RIG_STATE", REPO_ROOT / ".local-cluster")).resolve()

SERVICE_CIDR = "10.0.0.0/24"
S3_BUCKET = "docjobs"
S3_ACCESS_KEY = "docjobs"
S3_SECRET_KEY = "docjobs-secret"
LOCK_FILE = "lock"  # serializes up/down
USERS_LOCK_FILE = "users.lock"  # shared-locked by test sessions using the rig (fixtures.py)
NODES = ("cpu-0", "gpu-0")  # what tests/rig/kubelet.py registers

# Start order; `down` stops in reverse.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "minio",
    "kubelet",
)


@dataclass
class State:
    k8s_version: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    auto_down: bool = False

    @staticmethod
    def path() -> Path:
        return STATE_DIR / "state.json"

    @classmethod
    def load(cls) -> State | None:
        try:
            return cls(**json.loads(cls.path().read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self) -> None:
        self.path().write_text(json.dumps(asdict(self), indent=2) + "\n")


def log(msg: str) -> None:
    print(f"local-cluster: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def _ours(pid: int, marker: str) -> bool:
    """True if pid is alive and its command line or environment mentions
    `marker` (the state dir), so a recycled pid is never signalled."""
    needle = marker.encode()
    try:
        for _ in range(50):
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return False
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            if cmdline or environ:
                return needle in cmdline or needle in environ
            # Right after exec both read empty for a moment (seen with the
            # 100 MB minio binary): look again rather than call it dead.
            time.sleep(0.01)
    except (OSError, IndexError):
        pass
    return False


def stop_group(pid: int, marker: str, grace: float = 10.0) -> None:
    """SIGTERM the process group led by pid, SIGKILL after `grace` seconds."""
    if not _ours(pid, marker):
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _ours(pid, marker):
                return
            time.sleep(0.1)
    log(f"pid {pid} did not exit after SIGKILL")


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    logfile = STATE_DIR / "logs" / f"{name}.log"
    with open(logfile, "ab") as out:
        # New session: the component and anything it forks share one process
        # group, so `down` can signal the whole group.
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=STATE_DIR,
            env=env,
            start_new_session=True,
        )
    return proc.pid


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open until all are picked)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------- waiting


def _tail(name: str, lines: int = 30) -> str:
    try:
        text = (STATE_DIR / "logs" / f"{name}.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_for(name: str, pid: int, check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Poll check() until true; fail early with the log tail if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _ours(pid, str(STATE_DIR)):
            raise RuntimeError(f"{name} exited during startup; log tail:\n{_tail(name)}")
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{name} not ready after {timeout:.0f}s; log tail:\n{_tail(name)}")


def http_ok(url: str, token: str | None = None, ctx: ssl.SSLContext | None = None) -> bool:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError:
        return False


def api_get(path: str, port: int, token: str) -> dict:  # type: ignore[type-arg]
    ctx = ssl.create_default_context(cafile=str(STATE_DIR / "pki" / "ca.crt"))
    req = urllib.request.Request(
        f"https://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
        return dict(json.loads(resp.read()))


def nodes_ready(port: int, token: str) -> bool:
    items = api_get("/api/v1/nodes", port, token).get("items", [])
    ready = {
        n["metadata"]["name"]
        for n in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n.get("status", {}).get("conditions", [])
        )
    }
    return ready >= set(NODES)


# ---------------------------------------------------------------- up / down


def build() -> dict[str, str]:
    out = subprocess.run(
        [str(RIG_DIR / "build.sh")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def running() -> State | None:
    st = State.load()
    if st and st.pids and all(_ours(st.pids.get(c, 0), str(STATE_DIR)) for c in COMPONENTS):
        return st
    return None


@dataclass
class Launch:
    """How to start one component, and how to tell it is ready."""

    argv: list[str]
    ready: Callable[[], bool]
    timeout: float
    env: dict[str, str] | None = None
    then: Callable[[], None] | None = None


# Started stage by stage; the components of one stage start together.
STAGES = (
    ("etcd",),
    ("kube-apiserver",),
    ("kube-controller-manager", "kube-scheduler"),
    ("minio",),
    ("kubelet",),
)


def launches(st: State, kbin: Path, mbin: Path) -> dict[str, Launch]:
    """Every component's command line, from the ports and files of `st`."""
    ports = st.ports
    p = STATE_DIR / "pki"
    kubeconfig = STATE_DIR / "kubeconfig"
    token = pki.admin_token(p)
    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
    common = [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
    ]
    # Their serving certs are self-signed, made at start.
    insecure = ssl._create_unverified_context()
    s3_endpoint = f"127.0.0.1:{ports['minio']}"
    return {
        "etcd": Launch(
            [
                str(kbin / "etcd"),
                "--name=rig",
                f"--data-dir={STATE_DIR / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=rig={peer_url}",
                "--log-level=warn",
                # Test data: skip fsync so the shared machine's disk is not the bottleneck.
                "--unsafe-no-fsync",
            ],
            lambda: http_ok(f"{etcd_url}/health"),
            60,
        ),
        "kube-apiserver": Launch(
            [
                str(kbin / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={ports['apiserver']}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                # Published for KCM/scheduler delegated authn; without it they log
                # "missing content for CA bundle" forever.
                f"--requestheader-client-ca-file={p / 'ca.crt'}",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--token-auth-file={p / 'tokens.csv'}",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                # The default admission chain (NamespaceLifecycle, ServiceAccount,
                # LimitRanger, ResourceQuota, PodSecurity, ...) is what a real
                # cluster runs; nothing in it blocks Jobs.
                # A loopback address may not be written into the kubernetes
                # Endpoints object, so do not reconcile it (nothing in-cluster dials it).
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
            lambda: http_ok(
                f"https://127.0.0.1:{ports['apiserver']}/readyz",
                token,
                ssl.create_default_context(cafile=str(p / "ca.crt")),
            ),
            120,
        ),
        "kube-controller-manager": Launch(
            [
                str(kbin / "kube-controller-manager"),
                *common,
                f"--secure-port={ports['controller-manager']}",
                # '*' = every controller that is on by default: job, ttl-after-finished,
                # garbage-collector, namespace, serviceaccount, nodelifecycle, podgc, ...
                "--controllers=*",
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--root-ca-file={p / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # Controllers act with the admin identity (system:masters). Per-controller
                # service-account credentials would only add startup latency here.
                "--use-service-account-credentials=false",
            ],
            lambda: http_ok(
                f"https://127.0.0.1:{ports['controller-manager']}/healthz", ctx=insecure
            ),
            90,
        ),
        "kube-scheduler": Launch(
            [str(kbin / "kube-scheduler"), *common, f"--secure-port={ports['scheduler']}"],
            lambda: http_ok(f"https://127.0.0.1:{ports['scheduler']}/healthz", ctx=insecure),
            90,
        ),
        "minio": Launch(
            [
                str(mbin / "minio"),
                "server",
                "--quiet",
                f"--address={s3_endpoint}",
                f"--console-address=127.0.0.1:{ports['minio-console']}",
                str(STATE_DIR / "minio"),
            ],
            lambda: http_ok(f"http://{s3_endpoint}/minio/health/ready"),
            60,
            env={
                **_base_env(),
                "MINIO_ROOT_USER": S3_ACCESS_KEY,
                "MINIO_ROOT_PASSWORD": S3_SECRET_KEY,
                "MINIO_BROWSER": "off",
                "MINIO_UPDATE": "off",
            },
            then=lambda: s3.ensure_bucket(s3_endpoint, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET),
        ),
        # The kubelet inherits the caller's environment: PATH decides which
        # `docjobs`/`python3` pods run, DOCJOBS_RIG_ENTRYPOINT is read there.
        "kubelet": Launch(
            [
                sys.executable,
                str(RIG_DIR / "kubelet.py"),
                f"--kubeconfig={kubeconfig}",
                f"--state-dir={STATE_DIR}",
            ],
            lambda: nodes_ready(ports["apiserver"], token),
            60,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ),
    }


def start_components(st: State, wanted: set[str], kbin: Path, mbin: Path) -> None:
    """Start the `wanted` components stage by stage, each ready before the next stage."""
    plans = launches(st, kbin, mbin)
    for stage in STAGES:
        names = [n for n in stage if n in wanted]
        for name in names:
            st.pids[name] = spawn(name, plans[name].argv, plans[name].env)
            st.save()
        for name in names:
            plan = plans[name]
            wait_for(name, st.pids[name], plan.ready, plan.timeout)
            if plan.then is not None:
                plan.then()


def dead_components(st: State) -> set[str]:
    return {c for c in COMPONENTS if not _ours(st.pids.get(c, 0), str(STATE_DIR))}


def healable(st: State | None, k8s_version: str) -> bool:
    """Whether a partly running rig can be completed in place: same binaries, its files
    (CA, kubeconfig, etcd and MinIO data) still there, every port known."""
    if st is None or st.k8s_version != k8s_version or not st.pids:
        return False
    files = ("pki/ca.crt", "pki/tokens.csv", "kubeconfig", "etcd", "minio", "logs", "pods")
    ports = {"etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "minio"}
    return all((STATE_DIR / f).exists() for f in files) and ports <= set(st.ports)


def up() -> None:
    t0 = time.monotonic()
    st = running()
    if st:
        log("already running")
        print_summary(st)
        return
    if importlib.util.find_spec("kubernetes") is None:
        raise RuntimeError(  # the kubelet runs under this same interpreter
            f"kubelet needs the `kubernetes` package in {sys.executable}: pip install kubernetes"
        )
    bins = build()
    kbin, mbin = Path(bins["K8S_BIN"]), Path(bins["MINIO_BIN"])
    st = State.load()
    if st is not None and healable(st, bins["K8S_VERSION"]):
        dead = dead_components(st)
        # Same ports, CA and data: clients pointed at the rig keep working.
        log(f"partly running; restarting {', '.join(c for c in COMPONENTS if c in dead)}")
        try:
            start_components(st, dead, kbin, mbin)
        except RuntimeError as e:
            log(f"restarting in place failed ({e}); starting afresh")
        else:
            write_env(st)
            log(f"up in {time.monotonic() - t0:.1f}s")
            print_summary(st)
            return
    if st is not None:
        log("found a stale rig; stopping it first")
        down()
    fresh(bins, kbin, mbin)
    st = State.load()
    assert st is not None
    log(f"up in {time.monotonic() - t0:.1f}s")
    print_summary(st)


def fresh(bins: dict[str, str], kbin: Path, mbin: Path) -> None:
    """An empty cluster: new state, CA, ports and data."""
    # The previous run's logs stay readable until this point.
    for old in STATE_DIR.iterdir():
        if old.name not in (LOCK_FILE, USERS_LOCK_FILE):
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
    for sub in ("logs", "pki", "pods", "etcd", "minio"):
        (STATE_DIR / sub).mkdir(parents=True)
    p = STATE_DIR / "pki"
    token = pki.generate(p)
    names = (
        "etcd",
        "etcd-peer",
        "apiserver",
        "controller-manager",
        "scheduler",
        "minio",
        "minio-console",
    )
    st = State(
        k8s_version=bins["K8S_VERSION"],
        ports=dict(zip(names, free_ports(len(names)), strict=True)),
        # Set by the pytest fixture: the last test session using the rig stops it.
        auto_down=os.environ.get("DOCJOBS_RIG_AUTO_DOWN") == "1",
    )
    pki.write_kubeconfig(
        STATE_DIR / "kubeconfig", f"https://127.0.0.1:{st.ports['apiserver']}", p / "ca.crt", token
    )
    st.save()
    start_components(st, set(COMPONENTS), kbin, mbin)
    write_env(st)


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ}


def write_env(st: State) -> None:
    values = {
        "KUBECONFIG": str(STATE_DIR / "kubeconfig"),
        "DOCJOBS_S3_ENDPOINT": f"127.0.0.1:{st.ports['minio']}",
        "DOCJOBS_S3_BUCKET": S3_BUCKET,
        "DOCJOBS_S3_ACCESS_KEY": S3_ACCESS_KEY,
        "DOCJOBS_S3_SECRET_KEY": S3_SECRET_KEY,
        "DOCJOBS_S3_SECURE": "false",
    }
    (STATE_DIR / "env").write_text("".join(f"export {k}={v}\n" for k, v in values.items()))


def print_summary(st: State) -> None:
    ports = st.ports
    where = {
        "etcd": f"http://127.0.0.1:{ports['etcd']}",
        "kube-apiserver": f"https://127.0.0.1:{ports['apiserver']}",
        "kube-controller-manager": f"https://127.0.0.1:{ports['controller-manager']}/healthz",
        "kube-scheduler": f"https://127.0.0.1:{ports['scheduler']}/healthz",
        "minio": f"http://127.0.0.1:{ports['minio']} (bucket {S3_BUCKET})",
        "kubelet": f"nodes {', '.join(NODES)}; pod logs in {STATE_DIR / 'pods'}",
    }
    print(f"docjobs local cluster (Kubernetes {st.k8s_version})")
    for c in COMPONENTS:
        print(f"  {c:<24} pid {st.pids.get(c, '-'):<8} {where[c]}")
        print(f"  {'':<24} log {STATE_DIR / 'logs' / (c + '.log')}")
    print(f"kubeconfig: {STATE_DIR / 'kubeconfig'}")
    print(f"env:        source {STATE_DIR / 'env'}")


def down() -> None:
    st = State.load()
    marker = str(STATE_DIR)
    if st:
        for c in reversed(COMPONENTS):
            if c in st.pids:
                stop_group(st.pids[c], marker)
    # The kubelet kills its pods on SIGTERM; this catches any it could not
    # (e.g. it was SIGKILLed). Pod pid files name their process groups.
    for pidfile in (STATE_DIR / "pods").glob("*.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stop_group(int(pidfile.read_text().split()[0]), marker, grace=2.0)
        pidfile.unlink(missing_ok=True)
    if st:
        st.pids = {}
        st.save()
        log("stopped")
    else:
        log("not running")


def status() -> int:
    st = running()
    if st:
        print_summary(st)
        return 0
    print("not running")
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="local-cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("command", choices=("up", "down", "status"))
    args = ap.parse_args(argv)
    if args.command == "status":
        return status()
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    # One up/down at a time (two test sessions may start together): the
    # second waits, then finds the rig running.
    lock = open(STATE_DIR / LOCK_FILE, "w")  # noqa: SIM115 - held until exit
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        if args.command == "up":
            try:
                up()
            except BaseException:
                down()  # never leave half a cluster behind; logs stay
                raise
        else:
            down()
    except (RuntimeError, subprocess.CalledProcessError) as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
