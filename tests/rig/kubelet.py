#!/usr/bin/env python3
"""Process kubelet for the local test rig.

Registers nodes cpu-0 and gpu-0, keeps them Ready (node status + Lease
heartbeats), and runs each pod bound to them as a local process group (see
podspec.py for the image/command mapping, podrun.py for a pod's lifecycle).
Everything else — scheduling, Jobs, TTL, GC — is the real control plane.

Run by scripts/local-cluster as `python3 tests/rig/kubelet.py --kubeconfig K
--state-dir D`; it imports its sibling modules as top-level modules.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podrun import PodRun, kill_group, now, pod_key

from docjobs.kube.client import JSON, STRATEGIC_MERGE_PATCH, KubeClient, KubeError

log = logging.getLogger("kubelet")

LEASE_NS = "kube-node-lease"
LEASE_SECONDS = 40
HEARTBEAT_EVERY = 10.0  # lease renewals; node status every 3rd beat, or when not Ready
CONDITIONS = [
    ("Ready", "True", "KubeletReady", "rig process kubelet is posting ready status"),
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
    ("PIDPressure", "False", "KubeletHasSufficientPID", ""),
]
"""What the kubelet reports of its nodes, always: (type, status, reason, message)."""
BASE_CAPACITY = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}


@dataclass
class NodeSpec:
    name: str
    labels: dict[str, str]
    taints: list[JSON] = field(default_factory=list)
    extra_capacity: dict[str, str] = field(default_factory=dict)

    @property
    def capacity(self) -> dict[str, str]:
        return {**BASE_CAPACITY, **self.extra_capacity}


NODES = [
    NodeSpec("cpu-0", {"docjobs.io/pool": "cpu"}),
    NodeSpec(
        "gpu-0",
        {"docjobs.io/pool": "gpu"},
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        extra_capacity={"nvidia.com/gpu": "1"},
    ),
]


def micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def conditions(before: dict[str, JSON]) -> list[JSON]:
    """``CONDITIONS`` as node conditions, heartbeat now; a condition's transition time is
    kept from ``before`` (conditions by type) while its status stays what it was."""
    t = now()
    made = []
    for kind, status, reason, message in CONDITIONS:
        was = before.get(kind) or {}
        since = was.get("lastTransitionTime") if was.get("status") == status else None
        made.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": t,
                "lastTransitionTime": since or t,
            }
        )
    return made


def _ready(node: JSON) -> bool:
    found = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in found)


class Kubelet:
    def __init__(self, kube: KubeClient, state_dir: Path) -> None:
        self.kube = kube
        self.pods_dir = state_dir / "pods"
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.nodes = {n.name: n for n in NODES}
        self.runs: dict[str, PodRun] = {}  # by pod uid; kept until the pod is gone
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.version = "v0.0.0"

    # ------------------------------------------------------------ nodes

    def register(self, spec: NodeSpec) -> None:
        labels = {
            **spec.labels,
            "kubernetes.io/hostname": spec.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
        }
        path = f"/api/v1/nodes/{spec.name}"
        try:
            node = self.kube.get(path)
            # Keep taints others (node controller) own, reset ours.
            ours = {t["key"] for t in spec.taints}
            taints = [
                t for t in node.get("spec", {}).get("taints", []) if t["key"] not in ours
            ] + spec.taints
            self.kube.patch(path, {"metadata": {"labels": labels}, "spec": {"taints": taints}})
        except KubeError as e:
            if e.status != 404:
                raise
            self.kube.create(
                "/api/v1/nodes",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": spec.name, "labels": labels},
                    "spec": {"taints": spec.taints},
                },
            )
        conds = conditions({})
        self.kube.patch(
            f"{path}/status",
            {
                "status": {
                    "capacity": spec.capacity,
                    "allocatable": spec.capacity,
                    "conditions": conds,
                    "addresses": [
                        {"type": "InternalIP", "address": "127.0.0.1"},
                        {"type": "Hostname", "address": spec.name},
                    ],
                    "nodeInfo": {
                        "machineID": spec.name,
                        "systemUUID": spec.name,
                        "bootID": spec.name,
                        "kernelVersion": os.uname().release,
                        "osImage": "docjobs rig",
                        "containerRuntimeVersion": "docjobs-rig://1",
                        "kubeletVersion": self.version,
                        "kubeProxyVersion": "",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                    },
                }
            },
            STRATEGIC_MERGE_PATCH,
        )
        self.renew_lease(spec.name)
        log.info("node %s registered", spec.name)

    def renew_lease(self, node: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases/{node}"
        try:
            self.kube.patch(path, {"spec": {"renewTime": micro_now(), "holderIdentity": node}})
        except KubeError as e:
            if e.status != 404:
                raise
            owner = self.kube.get(f"/api/v1/nodes/{node}")["metadata"]
            self.kube.create(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": node,
                        "namespace": LEASE_NS,
                        # Owned by the Node, as upstream does, so GC removes it with the node.
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Node", "name": node, "uid": owner["uid"]}
                        ],
                    },
                    "spec": {
                        "holderIdentity": node,
                        "leaseDurationSeconds": LEASE_SECONDS,
                        "renewTime": micro_now(),
                    },
                },
            )

    def heartbeat_loop(self) -> None:
        beat = 0
        while not self.stop.wait(HEARTBEAT_EVERY):
            beat += 1
            for name, spec in self.nodes.items():
                try:
                    self.renew_lease(name)
                    node = self.kube.get(f"/api/v1/nodes/{name}")
                    # After an API-server outage the node lifecycle controller has set Ready
                    # to Unknown (and tainted the node unreachable): only the kubelet's own
                    # status says Ready again, and then the controller lifts the taint.
                    if beat % 3 == 0 or not _ready(node):
                        self.post_status(name, node)
                except KubeError as e:
                    if e.status == 404:  # node deleted under us: come back
                        self._try(lambda: self.register(spec))
                    else:
                        log.warning("heartbeat %s: %s", name, e)
                except Exception as e:
                    log.warning("heartbeat %s: %s", name, e)

    def post_status(self, name: str, node: JSON) -> None:
        """The node's conditions as the kubelet sees them, heartbeat time now."""
        before = (node.get("status") or {}).get("conditions") or []
        if not _ready(node):
            log.info("node %s: reporting Ready again", name)
        self.kube.patch(
            f"/api/v1/nodes/{name}/status",
            {"status": {"conditions": conditions({c["type"]: c for c in before})}},
            STRATEGIC_MERGE_PATCH,
        )

    def _try(self, fn: Any) -> None:
        try:
            fn()
        except Exception as e:
            log.warning("%s", e)

    # ------------------------------------------------------------ pods

    def handle(self, pod: JSON) -> None:
        """React to the current state of one pod bound to one of our nodes."""
        meta, status = pod["metadata"], pod.get("status", {})
        uid = meta["uid"]
        phase = status.get("phase", "Pending")
        with self.lock:
            run = self.runs.get(uid)
        if meta.get("deletionTimestamp"):
            if run is not None and not run.done:
                run.request_kill(float(meta.get("deletionGracePeriodSeconds", 30)))
                return
            stub = PodRun(self.kube, pod, self.pods_dir, {})
            if run is None and phase not in ("Succeeded", "Failed"):
                if self._was_started(pod):
                    self._fail_orphan(pod)
                else:
                    # Deleted before it ran. A terminal phase lets the Job
                    # controller count it, as with the real kubelet.
                    stub._report_terminal(
                        137,
                        "ContainerStatusUnknown",
                        "The container could not be located when the pod was terminated",
                        "Failed",
                    )
            # Nothing (left) running: let the apiserver drop the object.
            stub.finish_delete()
            return
        if run is not None or phase in ("Succeeded", "Failed"):
            return
        if self._was_started(pod):
            self._fail_orphan(pod)
            return
        node = self.nodes[pod["spec"]["nodeName"]]
        run = PodRun(self.kube, pod, self.pods_dir, node.capacity)
        with self.lock:
            self.runs[uid] = run
        run.start()

    def gone(self, uid: str) -> None:
        """The pod object is gone (deleted with grace 0 or force)."""
        with self.lock:
            run = self.runs.pop(uid, None)
        if run is not None and not run.done:
            run.request_kill(0.0)

    @staticmethod
    def _was_started(pod: JSON) -> bool:
        """Status says a previous kubelet ran it (we have no record of it)."""
        status = pod.get("status", {})
        return status.get("phase") == "Running" or any(
            "running" in cs.get("state", {}) or "terminated" in cs.get("state", {})
            for cs in status.get("containerStatuses", [])
        )

    def _fail_orphan(self, pod: JSON) -> None:
        """A pod started by an earlier kubelet process: its process is not
        ours to wait for any more, so kill what is left and fail the pod."""
        run = PodRun(self.kube, pod, self.pods_dir, {})
        try:
            pid, uid = run.pid_path.read_text().split()[:2]
            # Only if that pid still runs this pod's process (pids get reused).
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            if uid == run.uid and str(run.msg_path).encode() in environ:
                kill_group(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        run.pid_path.unlink(missing_ok=True)
        run.done = True
        with self.lock:
            self.runs[run.uid] = run
        log.info("pod %s: started by a previous kubelet; failing it", pod_key(pod))
        old = pod.get("status", {}).get("containerStatuses") or [{}]
        started = old[0].get("state", {}).get("running", {}).get("startedAt")
        run._report_terminal(
            137,
            "KubeletRestart",
            "the rig kubelet restarted while this pod ran; its process was lost",
            "Failed",
            started,
            pod_reason="KubeletRestart",
        )

    def sync_loop(self) -> None:
        """List, then watch from the list's resourceVersion; re-list on any
        error or expired watch (410)."""
        selector = "spec.nodeName!="  # only bound pods; filtered to our nodes below
        while not self.stop.is_set():
            try:
                lst = self.kube.get("/api/v1/pods", fieldSelector=selector)
                seen = set()
                for pod in lst.get("items", []):
                    if pod["spec"].get("nodeName") in self.nodes:
                        seen.add(pod["metadata"]["uid"])
                        self.handle(pod)
                with self.lock:
                    vanished = [u for u in self.runs if u not in seen]
                for uid in vanished:
                    self.gone(uid)
                rv = lst["metadata"]["resourceVersion"]
                while not self.stop.is_set():
                    for ev in self.kube.watch("/api/v1/pods", rv, 120, fieldSelector=selector):
                        obj = ev.get("object", {})
                        if ev.get("type") == "ERROR":
                            raise RuntimeError(f"watch error: {obj.get('message')}")
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if (
                            ev.get("type") == "BOOKMARK"
                            or obj.get("spec", {}).get("nodeName") not in self.nodes
                        ):
                            continue
                        if ev["type"] == "DELETED":
                            self.gone(obj["metadata"]["uid"])
                        else:
                            self.handle(obj)
            except Exception as e:
                if self.stop.is_set():
                    break
                log.warning("pod sync: %s; re-listing", e)
                self.stop.wait(1.0)

    # ------------------------------------------------------------ main

    def shutdown(self) -> None:
        """Kill every pod process group (SIGTERM, then SIGKILL); leave pod
        objects as they are, like a kubelet that went away."""
        self.stop.set()
        with self.lock:
            runs = [r for r in self.runs.values() if not r.done]
        pids = []
        for r in runs:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pids.append(int(r.pid_path.read_text().split()[0]))
        for pid in pids:
            kill_group(pid, signal.SIGTERM)
        time.sleep(1.0 if pids else 0)
        for pid in pids:
            kill_group(pid, signal.SIGKILL)

    def run(self) -> None:
        while True:
            try:
                self.version = self.kube.get("/version").get("gitVersion", self.version)
                for spec in self.nodes.values():
                    self.register(spec)
                break
            except Exception as e:
                log.warning("registering nodes: %s; retrying", e)
                if self.stop.wait(1.0):
                    return
        threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True).start()
        self.sync_loop()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--state-dir", required=True, type=Path)
    args = ap.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(threadName)s %(message)s",
    )
    kubelet = Kubelet(KubeClient.from_environment(kubeconfig=args.kubeconfig), args.state_dir)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping pods and exiting", signum)
        kubelet.shutdown()
        os._exit(0)  # daemon threads may sit in blocking reads

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kubelet.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
