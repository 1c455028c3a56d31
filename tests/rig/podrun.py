"""One pod's life on the process kubelet: resolve, start, watch, report, kill.

Each PodRun owns a thread. The kubelet's watch loop only creates PodRuns and
forwards deletion requests (request_kill), so no API call or process wait
ever blocks the watch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import podidentity
import podspec

from docjobs.kube.client import JSON, STRATEGIC_MERGE_PATCH, KubeClient, KubeError

log = logging.getLogger("kubelet")

MAX_MESSAGE = 4096  # upstream's cap on a termination message
FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES = 80, 2048  # FallbackToLogsOnError tail
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_key(pod: JSON) -> str:
    return f"{pod['metadata']['namespace']}_{pod['metadata']['name']}"


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def conditions(ready: bool, reason: str = "") -> list[JSON]:
    t = now()
    out = [
        {"type": c, "status": "True", "lastTransitionTime": t}
        for c in ("PodReadyToStartContainers", "Initialized")
    ]  # PodScheduled is the scheduler's
    for c in ("ContainersReady", "Ready"):
        cond: JSON = {"type": c, "status": "True" if ready else "False", "lastTransitionTime": t}
        if reason:
            cond["reason"] = reason
        out.append(cond)
    return out


class PodRun:
    def __init__(
        self, kube: KubeClient, pod: JSON, pods_dir: Path, node_alloc: dict[str, str]
    ) -> None:
        self.kube = kube
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.ns: str = pod["metadata"]["namespace"]
        self.name: str = pod["metadata"]["name"]
        self.container: JSON = pod["spec"]["containers"][0]
        self.node_alloc = node_alloc
        key = pod_key(pod)
        self.log_path = pods_dir / f"{key}.log"
        self.pid_path = pods_dir / f"{key}.pid"
        self.msg_path = pods_dir / f"{key}.termination-log"
        self.work_dir = pods_dir / key
        self.kill_event = threading.Event()
        self.kill_grace = 30.0
        self.done = False
        self.restarts = 0
        self.last_state: JSON = {}  # previous run's terminated state (restarts)
        self.thread = threading.Thread(target=self._main, name=f"pod-{key}", daemon=True)

    # ------------------------------------------------------------ API

    @property
    def status_path(self) -> str:
        return f"/api/v1/namespaces/{self.ns}/pods/{self.name}/status"

    def patch_status(self, status: JSON) -> bool:
        """Strategic-merge the pod status (conditions merge by type).
        metadata.uid guards against a same-named replacement pod.

        Like a real kubelet, it keeps trying until the API server takes the status (an
        outage of any length): a pod whose end is never reported would run on forever in
        the API, until its Job's deadline. False only when the pod is gone or replaced."""
        body = {"metadata": {"uid": self.uid}, "status": status}
        attempt = 0
        while True:
            try:
                self.kube.patch(self.status_path, body, STRATEGIC_MERGE_PATCH)
                return True
            except KubeError as e:
                if e.status in (404, 409, 422):
                    log.info("pod %s/%s: status not written (%s)", self.ns, self.name, e.status)
                    return False
                log.warning("pod %s/%s: status patch failed: %s", self.ns, self.name, e)
            except Exception as e:  # API server down or restarting: keep trying
                log.warning("pod %s/%s: status patch failed: %s", self.ns, self.name, e)
            time.sleep(min(0.2 * 2**attempt, 3.0))
            attempt = min(attempt + 1, 8)

    def finish_delete(self) -> None:
        """The pod's processes are gone: remove the object, as the kubelet
        does once a gracefully deleted pod has terminated."""
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
        try:
            self.kube.delete(
                f"/api/v1/namespaces/{self.ns}/pods/{self.name}", propagation=None, options=body
            )
        except KubeError as e:
            if e.status not in (404, 409):
                log.warning("pod %s/%s: final delete failed: %s", self.ns, self.name, e)

    def lookup(self, kind: str, ns: str, name: str) -> JSON | None:
        try:
            return self.kube.get(f"/api/v1/namespaces/{ns}/{kind}/{name}")
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    # ------------------------------------------------------------ control

    def start(self) -> None:
        self.thread.start()

    def request_kill(self, grace: float) -> None:
        """Pod got a deletionTimestamp (or vanished): stop within `grace` s."""
        if not self.kill_event.is_set():
            self.kill_grace = max(0.0, grace)
            self.kill_event.set()

    # ------------------------------------------------------------ lifecycle

    def _main(self) -> None:
        try:
            self._lifecycle()
        except Exception:
            log.exception("pod %s/%s: runner crashed", self.ns, self.name)
            self._report_terminal(
                128, "Error", "rig kubelet internal error; see kubelet.log", "Failed"
            )
        finally:
            self.done = True
            self.pid_path.unlink(missing_ok=True)
            if self.kill_event.is_set():
                self.finish_delete()

    def _prepare(self) -> tuple[list[str], dict[str, str]] | None:
        """Resolve argv/env, retrying while referenced config is missing.
        Returns None if the pod failed or was deleted meanwhile."""
        waiting_msg = ""
        while True:
            retry = podspec.ConfigError.retry_seconds
            try:
                # Volumes first, as upstream mounts them before it resolves the environment.
                local = self._mount_volumes()
                own = podspec.container_env(self.pod, self.lookup, self.node_alloc)
                own = {k: podspec.under_mounts(v, local) for k, v in own.items()}
                identity = podidentity.service_account_env(self.kube, self.pod, self.work_dir)
                env = {
                    **podspec.host_env(dict(os.environ)),
                    "HOSTNAME": self.name,
                    **identity,
                    **own,
                }
                env["DOCJOBS_TERMINATION_LOG"] = str(self.msg_path)
                argv = podspec.command_line(self.pod, env, dict(os.environ))
                argv = [argv[0], *(podspec.under_mounts(a, local) for a in argv[1:])]
                ports = podidentity.host_ports(self.kube, self.pod)
                return podspec.remap_ports(argv, ports), env
            except podspec.StartError as e:
                self._report_terminal(128, e.reason, e.message, "Failed", pod_reason=e.reason)
                return None
            except podspec.ConfigError as e:
                retry = e.retry_seconds
                if str(e) != waiting_msg:
                    waiting_msg = str(e)
                    self.patch_status(
                        {
                            "phase": "Pending",
                            "containerStatuses": [
                                self._cstatus(
                                    {"waiting": {"reason": e.reason, "message": waiting_msg}},
                                    0,
                                )
                            ],
                        }
                    )
            if self.kill_event.wait(retry):
                # Deleted before it could start: terminal, as upstream reports it.
                self._report_terminal(
                    137,
                    "ContainerStatusUnknown",
                    "The container could not be located when the pod was terminated",
                    "Failed",
                )
                return None

    def _mount_volumes(self) -> dict[str, str]:
        """Write the pod's secret volumes under its directory, each file with its mode;
        {mountPath: the directory standing in for it}."""
        local: dict[str, str] = {}
        volumes = podspec.secret_volumes(self.pod, self.lookup)
        for mount_path, files in volumes.items():
            directory = self.work_dir / "volumes" / mount_path.strip("/").replace("/", "_")
            directory.mkdir(parents=True, exist_ok=True)
            for path, (content, mode) in files.items():
                target = directory / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)  # an earlier try's file may be read-only
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
                with os.fdopen(fd, "wb") as out:
                    out.write(content)
                os.chmod(target, mode)  # whatever the umask took
            local[mount_path] = str(directory)
        return local

    def _lifecycle(self) -> None:
        prepared = self._prepare()
        if prepared is None:
            return
        argv, env = prepared
        policy = self.pod["spec"].get("restartPolicy", "Always")
        deadline_s = self.pod["spec"].get("activeDeadlineSeconds")
        pod_start = time.monotonic()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(b"")
        while True:
            exit_code, started, why = self._run_once(
                argv, env, self.restarts, pod_start, deadline_s
            )
            message = self._termination_message(exit_code, started)
            reason = "Completed" if exit_code == 0 else "Error"
            stop = (
                why != "exited" or policy == "Never" or (policy == "OnFailure" and exit_code == 0)
            )
            if stop:
                phase = "Succeeded" if exit_code == 0 and why != "deadline" else "Failed"
                pod_reason = "DeadlineExceeded" if why == "deadline" else ""
                pod_msg = (
                    "Pod was active on the node longer than the specified deadline"
                    if pod_reason
                    else ""
                )
                self._report_terminal(
                    exit_code, reason, message, phase, started, pod_reason, pod_msg
                )
                return
            # Restart in place (OnFailure/Always), with a short capped backoff
            # instead of upstream's 10s..5m so tests stay fast.
            backoff = min(2.0**self.restarts, 30.0)
            self.last_state = {"terminated": self._terminated(exit_code, reason, message, started)}
            self.patch_status(
                {
                    "containerStatuses": [
                        self._cstatus(
                            {
                                "waiting": {
                                    "reason": "CrashLoopBackOff",
                                    "message": f"back-off {backoff:.0f}s",
                                }
                            },
                            self.restarts,
                        )
                    ]
                }
            )
            if self.kill_event.wait(backoff):
                self._report_terminal(exit_code, reason, message, "Failed", started)
                return
            self.restarts += 1

    def _run_once(
        self,
        argv: list[str],
        env: dict[str, str],
        restarts: int,
        pod_start: float,
        deadline_s: int | None,
    ) -> tuple[int, str, str]:
        """Run the process once. Returns (exit code, startedAt, why) where why
        is exited | killed (deletion) | deadline (activeDeadlineSeconds)."""
        workdir = self.container.get("workingDir")
        cwd = workdir if workdir and os.path.isdir(workdir) else str(self.work_dir)
        with open(self.log_path, "ab") as out:
            # New session => own process group: deletion signals the whole tree.
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = now()
        self.pid_path.write_text(f"{proc.pid} {self.uid}\n")
        log.info("pod %s/%s: started pid %d: %s", self.ns, self.name, proc.pid, argv)
        self.patch_status(
            {
                "phase": "Running",
                "hostIP": podspec.POD_IP,
                "hostIPs": [{"ip": podspec.POD_IP}],
                "podIP": podspec.POD_IP,
                "podIPs": [{"ip": podspec.POD_IP}],
                "startTime": self.pod.get("status", {}).get("startTime") or started,
                "conditions": conditions(ready=True),
                "containerStatuses": [
                    self._cstatus(
                        {"running": {"startedAt": started}},
                        restarts,
                        ready=True,
                        container_id=f"rig://{proc.pid}",
                    )
                ],
            }
        )
        why = "exited"
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if deadline_s is not None and time.monotonic() - pod_start > deadline_s:
                why = "deadline"
                self._stop(proc, float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)))
                break
            if self.kill_event.is_set():
                why = "killed"
                self._stop(proc, self.kill_grace)
                break
        # Like a container whose init died: take the rest of the group down too.
        kill_group(proc.pid, signal.SIGKILL)
        code = proc.returncode
        return (128 - code if code < 0 else code), started, why

    def _stop(self, proc: subprocess.Popen[bytes], grace: float) -> None:
        kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid, signal.SIGKILL)
            proc.wait()

    # ------------------------------------------------------------ status

    def _termination_message(self, exit_code: int, started: str) -> str:
        msg = b""
        paths = [self.msg_path]
        custom = self.container.get("terminationMessagePath", DEFAULT_TERMINATION_PATH)
        if custom != DEFAULT_TERMINATION_PATH:
            paths.append(Path(custom))
        start_ts = (
            dt.datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
        )
        for p in paths:
            try:
                # A shared host path may hold an older pod's message: only
                # trust a file written since this process started.
                if p.stat().st_mtime >= start_ts - 1:
                    msg = p.read_bytes()[:MAX_MESSAGE]
            except OSError:
                continue
            if msg:
                break
        if (
            not msg
            and exit_code != 0
            and self.container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            try:
                lines = self.log_path.read_bytes().splitlines()[-FALLBACK_LOG_LINES:]
                msg = b"\n".join(lines)[-FALLBACK_LOG_BYTES:]
            except OSError:
                pass
        return msg.decode("utf-8", "replace")

    def _terminated(self, exit_code: int, reason: str, message: str, started: str | None) -> JSON:
        t: JSON = {
            "exitCode": exit_code,
            "reason": reason,
            "finishedAt": now(),
            "startedAt": started or now(),
        }
        if message:
            t["message"] = message
        return t

    def _cstatus(
        self,
        state: JSON,
        restarts: int,
        ready: bool = False,
        container_id: str = "",
    ) -> JSON:
        s: JSON = {
            "name": self.container["name"],
            "image": self.container.get("image", ""),
            "imageID": "",
            "ready": ready,
            "started": "running" in state,
            "restartCount": restarts,
            "state": state,
            "lastState": self.last_state,
        }
        if container_id:
            s["containerID"] = container_id
        return s

    def _report_terminal(
        self,
        exit_code: int,
        reason: str,
        message: str,
        phase: str,
        started: str | None = None,
        pod_reason: str = "",
        pod_msg: str = "",
    ) -> None:
        status: JSON = {
            "phase": phase,
            "conditions": conditions(
                ready=False, reason="PodCompleted" if phase == "Succeeded" else "PodFailed"
            ),
            "containerStatuses": [
                self._cstatus(
                    {"terminated": self._terminated(exit_code, reason, message, started)},
                    self.restarts,
                )
            ],
        }
        if pod_reason:
            status["reason"] = pod_reason
            status["message"] = pod_msg or message
        log.info("pod %s/%s: %s (exit %d, %s)", self.ns, self.name, phase, exit_code, reason)
        self.patch_status(status)
