"""DocumentJobs under an operator's :class:`Controller` in the test process, on the fake API
server (:mod:`tests.fakekube`) and a local object store.

The test plays every other party: the API (it stores an input and creates the DocumentJob),
kopf (:meth:`Operated.deliver` hands the watch events to the controller's entry points, as
the operator's handlers do), the Job controller and the kubelet (:meth:`Operated.finish`
writes the runner pod and the Job's end) and the runner (:meth:`Operated.store_outcome`).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docjobs.backends.base import new_job_id
from docjobs.config import OperatorSettings
from docjobs.domain.clock import iso, utcnow
from docjobs.domain.models import (
    InputRef,
    Job,
    JobError,
    JobSpec,
    ResultRef,
    RetryPolicy,
    RunnerSummary,
    RunOutcome,
)
from docjobs.kube.client import JSON
from docjobs.kube.paths import core_path, documentjobs_path, jobs_path
from docjobs.kube.resources import to_resource
from docjobs.operator.agenda import Ref
from docjobs.operator.controller import Controller
from docjobs.storage.base import ObjectStore, outcome_key, result_key
from tests.fakekube import FakeKube, SigningLocalStore

NS = "docjobs"
TENANT = "acme"
TEXT = {"kind": "convert", "sourceFormat": "text"}
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def wait_until(check: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    """``check()``'s first truthy answer: for work the controller runs on its own threads."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or check}")


def success(tenant: str, job_id: str) -> RunnerSummary:
    """What a runner reports when its attempt produced a result."""
    result = ResultRef(
        key=result_key(tenant, job_id, ".pdf"), content_type="application/pdf", size=9
    )
    return RunnerSummary(result=result, page_count=1)


def failure(reason: str, permanent: bool) -> RunnerSummary:
    return RunnerSummary(error=JobError(reason=reason, message=reason, permanent=permanent))


@dataclass
class Operated:
    kube: FakeKube
    store: SigningLocalStore
    settings: OperatorSettings
    cap: int = 0
    part_pages: int = 10
    ended: list[tuple[Job, str]] = field(default_factory=list)
    """Every job the controller announced as ended (its webhook hook), with its namespace."""
    delivered: int = 0
    """How many of the fake's events the controller has been handed."""
    controller: Controller = field(init=False)

    def __post_init__(self) -> None:
        self.controller = self.new_controller()

    def new_controller(self) -> Controller:
        """A controller as ``docjobs operator`` builds one; again for a restarted operator."""
        return Controller(
            self.kube,
            self.settings,
            self.store,
            lambda job, namespace: self.ended.append((job, namespace)),
            self.cap,
            part_pages=self.part_pages,
        )

    # --- the API's side ----------------------------------------------------------------

    def prepare(self, operation: dict[str, Any] | None = None, **fields: Any) -> JSON:
        """Store an input; the DocumentJob the API would create for it."""
        return documentjob(self.store, operation, **fields)

    def submit(self, operation: dict[str, Any] | None = None, **fields: Any) -> str:
        """Create a DocumentJob and let the operator hear of it; its name."""
        resource = self.prepare(operation, **fields)
        self.kube.create(documentjobs_path(NS), resource)
        self.deliver()
        return str(resource["metadata"]["name"])

    def cancel(self, name: str) -> None:
        self.kube.merge_patch(documentjobs_path(NS, name), {"spec": {"cancel": True}})
        self.deliver()

    # --- kopf's side ---------------------------------------------------------------------

    def start(self, name: str) -> None:
        """kopf's create handler (and the agenda's due look): one reconcile."""
        self.controller.reconcile(self.ref(name))
        self.deliver()

    def deliver(self) -> None:
        """Hand every change not yet seen to the controller, as kopf's event handlers do,
        until the controller's own writes bring no more."""
        while True:
            events = self.kube.history[self.delivered :]
            if not events:
                return
            self.delivered += len(events)
            for event in events:
                obj = event.object
                if "/documentjobs" in event.collection:
                    self.controller.track(event.type, obj)
                elif event.collection.endswith("/jobs"):
                    self.controller.job_changed(event.type, obj)
                elif event.collection.endswith("/pods"):
                    self.controller.pod_changed(event.type, obj)

    # --- reading ------------------------------------------------------------------------

    def ref(self, name: str) -> Ref:
        return Ref(NS, name)

    def resource(self, name: str) -> JSON:
        found = self.kube.stored(documentjobs_path(NS, name))
        assert found is not None, f"{name} is gone"
        return found

    def status(self, name: str) -> JSON:
        status: JSON = self.resource(name).get("status") or {}
        return status

    def job_id(self, name: str) -> str:
        return str(self.resource(name)["spec"]["jobId"])

    def runner_jobs(self) -> list[str]:
        return self.kube.names(jobs_path(NS))

    def runner_job(self, name: str) -> JSON:
        found = self.kube.stored(jobs_path(NS, name))
        assert found is not None, f"no runner Job {name}"
        return found

    def manifest_secret(self, job: str) -> str:
        """The name of the Secret runner Job ``job``'s pod mounts."""
        volumes = self.runner_job(job)["spec"]["template"]["spec"]["volumes"]
        (name,) = [v["secret"]["secretName"] for v in volumes if "secret" in v]
        return str(name)

    def manifest_url(self, job: str) -> str:
        """The manifest URL runner Job ``job``'s pod reads: from its own Secret."""
        secret = self.manifest_secret(job)
        found = self.kube.stored(core_path(NS, "secrets", secret))
        assert found is not None, f"no manifest Secret {secret} for {job}"
        return base64.b64decode(found["data"]["url"]).decode()

    # --- the Job controller, the kubelet and the runner ------------------------------------

    def finish(
        self,
        job: str,
        exit_code: int | None,
        summary: RunnerSummary | None = None,
        reason: str = "",
        oom: bool = False,
    ) -> None:
        """The runner pod of Job ``job`` ended with ``exit_code`` (None: no pod to tell),
        then the Job controller marked the Job Complete or Failed (``reason``)."""
        runner = self.runner_job(job)
        if exit_code is not None:
            self.write_pod(runner, exit_code, summary, oom)
        succeeded = exit_code == 0 and not reason
        if not reason and not succeeded:
            reason = "PodFailurePolicy" if exit_code == 42 else "BackoffLimitExceeded"
        condition = {
            "type": "Complete" if succeeded else "Failed",
            "status": "True",
            "reason": reason,
            "message": reason,
            "lastTransitionTime": iso(utcnow()),
        }
        counts = {"succeeded": 1} if succeeded else {"failed": 1}
        self.kube.write_status(jobs_path(NS, job), {"conditions": [condition], **counts})
        self.deliver()

    def write_pod(
        self, runner: JSON, exit_code: int, summary: RunnerSummary | None, oom: bool = False
    ) -> JSON:
        """The runner pod of Job ``runner``, its container terminated as the kubelet says."""
        job = runner["metadata"]["name"]
        template = runner["spec"]["template"]["metadata"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{job}-{len(self.kube.history)}",
                "labels": {**template.get("labels", {}), JOB_NAME_LABEL: job},
                "annotations": dict(template.get("annotations") or {}),
                "ownerReferences": [{"kind": "Job", "name": job, "uid": runner["metadata"]["uid"]}],
            },
            "spec": {"containers": [{"name": "runner", "image": "runner"}]},
        }
        created = self.kube.create(core_path(NS, "pods"), pod)
        terminated = {
            "exitCode": exit_code,
            "reason": "OOMKilled" if oom else ("Completed" if exit_code == 0 else "Error"),
            "message": summary.model_dump_json() if summary is not None else "",
            "finishedAt": iso(utcnow()),
        }
        status = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [{"name": "runner", "state": {"terminated": terminated}}],
        }
        path = core_path(NS, "pods", created["metadata"]["name"])
        return self.kube.write_status(path, status)

    def store_outcome(self, name: str, attempt: int, exit_code: int = 0) -> RunOutcome:
        """What a runner stores when its attempt ends: the result, then the outcome."""
        job_id = self.job_id(name)
        summary = success(TENANT, job_id) if exit_code == 0 else failure("Broken", True)
        if summary.result is not None:
            self.store.put_bytes(summary.result.key, b"%PDF-1.7", "application/pdf")
        outcome = RunOutcome(exit_code=exit_code, summary=summary)
        key = outcome_key(TENANT, job_id, attempt)
        self.store.put_bytes(key, outcome.model_dump_json().encode(), "application/json")
        return outcome


def documentjob(
    store: ObjectStore,
    operation: dict[str, Any] | None = None,
    data: bytes = b"a line of text",
    tenant: str = TENANT,
    retry: RetryPolicy | None = None,
    page_count: int | None = None,
    **fields: Any,
) -> JSON:
    """Store an input in ``store``; the DocumentJob the API would create for it."""
    job_id = new_job_id()
    key = f"{tenant}/{job_id}/input"
    store.put_bytes(key, data, "text/plain")
    spec = JobSpec.model_validate(
        {
            "job_id": job_id,
            "tenant": tenant,
            "operation": operation or TEXT,
            "input": InputRef(
                key=key,
                file_name="input.txt",
                content_type="application/pdf" if page_count else "text/plain",
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                page_count=page_count,
            ),
            "retry_policy": retry or RetryPolicy(),
            "created_at": utcnow(),
            **fields,
        }
    )
    return to_resource(spec, NS)


def operated(tmp_path: Path, cap: int = 0, part_pages: int = 10, **settings: Any) -> Operated:
    return Operated(
        FakeKube(),
        SigningLocalStore(tmp_path / "objects"),
        OperatorSettings.model_validate({"runner_image": "docjobs:test", **settings}),
        cap=cap,
        part_pages=part_pages,
    )
