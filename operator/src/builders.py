"""Pure functions: the runner Job of an attempt, and what finished Jobs and pods say.

No API calls here, so every rule about Job shape and outcome mapping is in one readable,
testable place; the controller only fetches objects and writes results.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from docjobs.config import OperatorSettings
from docjobs.domain.lifecycle import AttemptTimedOut, Observation, RunnerExited, RunnerLost
from docjobs.domain.models import (
    DOMAIN,
    EXIT_OK,
    EXIT_PERMANENT,
    EXIT_TRANSIENT,
    JobError,
    JobSpec,
    Progress,
    RunnerSummary,
    RunOutcome,
    engine_of,
)
from docjobs.domain.sharding import plan_parts, selection_size
from docjobs.kube.client import JSON
from docjobs.kube.resources import API_VERSION, KIND, LABEL_ATTEMPT, LABEL_JOB, LABEL_OPERATION
from docjobs.kube.status import parse_time

from .manifest_secrets import (
    MANIFEST_DIR,
    MANIFEST_FILE_ENV,
    MANIFEST_KEY,
    MANIFEST_VOLUME,
    manifest_volume,
)

CONTAINER = "runner"
LABEL_ENGINE = f"{DOMAIN}/engine"
LABEL_STEP = f"{DOMAIN}/step"
"""On the Job that merges a sharded attempt's parts: ``merge``; absent on runner Jobs."""
MERGE_STEP = "merge"
PAGE_PARTS_ENV = "DOCJOBS_PAGE_PARTS"
"""On a sharded attempt's runner: the JSON list of page selections, one per index."""
ANNOTATION_JOB_ID = f"{DOMAIN}/job-id"
ANNOTATION_OWNER = f"{DOMAIN}/documentjob"
"""On runner Jobs and pods: the DocumentJob's full name (a label value may be too short)."""
RUNNER_UID = 10001
LLM_SECRET_KEY = "apiKey"  # noqa: S105 - a key's name in the Secret
_MAX_LABEL = 63


def label_value(dj_name: str) -> str:
    """The DocumentJob's name as a label value (at most 63 characters, kept unique)."""
    if len(dj_name) <= _MAX_LABEL:
        return dj_name
    digest = hashlib.sha256(dj_name.encode()).hexdigest()[:10]
    return f"{dj_name[: _MAX_LABEL - 11].rstrip('-.')}-{digest}"


def job_name(dj_name: str, attempt: int, step: str = "") -> str:
    """``<documentjob>-a<attempt>`` (then ``-<step>``, if any); Job names must fit a
    63-character label (job-name)."""
    suffix = f"-a{attempt}-{step}" if step else f"-a{attempt}"
    base = dj_name
    if len(base) + len(suffix) > _MAX_LABEL:
        digest = hashlib.sha256(dj_name.encode()).hexdigest()[:10]
        base = f"{dj_name[: _MAX_LABEL - len(suffix) - 11].rstrip('-.')}-{digest}"
    return base + suffix


def attempt_deadline(spec: JobSpec, settings: OperatorSettings) -> int:
    """Seconds an attempt's Job may run (``activeDeadlineSeconds``): the engine's bound,
    shortened by the job's own timeout, never extended by it."""
    profile = settings.engines[engine_of(spec.operation)]
    return min(math.ceil(spec.timeout_seconds), profile.active_deadline_seconds)


def build_job(
    resource: JSON, spec: JobSpec, attempt: int, settings: OperatorSettings, manifest_secret: str
) -> JSON:
    """The batch/v1 Job that runs ``attempt`` of the DocumentJob ``resource``; its pod reads
    the job and the URLs of its objects from the manifest whose URL is in Secret
    ``manifest_secret``, mounted as a file (see :mod:`.manifest_secrets`)."""
    meta = resource["metadata"]
    engine = engine_of(spec.operation)
    profile = settings.engines[engine]
    pool = settings.pools[profile.pool]
    labels = {
        LABEL_JOB: label_value(meta["name"]),
        LABEL_ATTEMPT: str(attempt),
        LABEL_OPERATION: spec.operation.kind,
        LABEL_ENGINE: engine.value,
        "app.kubernetes.io/name": "docjobs-runner",
        "app.kubernetes.io/managed-by": "docjobs-operator",
    }
    annotations = {ANNOTATION_OWNER: meta["name"], ANNOTATION_JOB_ID: spec.job_id}
    deadline = attempt_deadline(spec, settings)
    image = settings.runner_gpu_image if pool.image == "gpu" else settings.runner_image
    container: JSON = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["docjobs", "runner"],
        "env": runner_env(attempt, settings),
        "resources": {
            "requests": dict(profile.requests),
            "limits": {**profile.limits, **pool.extra_limits},
        },
        # The runner writes its JSON summary there; logs are no substitute (FallbackToLogs
        # would hand us a traceback where the lifecycle expects a summary).
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a pod's own emptyDir
            {"name": MANIFEST_VOLUME, "mountPath": MANIFEST_DIR, "readOnly": True},
        ],
    }
    pod_spec: JSON = {
        "restartPolicy": "Never",
        # Runners need no Kubernetes API access; no token means nothing to steal.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "nodeSelector": dict(pool.node_selector),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "fsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            # Scratch space for the input and the engines under a read-only root filesystem.
            {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}},
            manifest_volume(manifest_secret),
        ],
    }
    if pool.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in pool.tolerations]
    if pool.runtime_class_name:
        pod_spec["runtimeClassName"] = pool.runtime_class_name
    if pool.priority_class_name:
        pod_spec["priorityClassName"] = pool.priority_class_name
    if settings.runner_service_account:
        pod_spec["serviceAccountName"] = settings.runner_service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(meta["name"], attempt),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            # Retries are the lifecycle's (with backoff and a visible attempt count), so the
            # Job itself never retries: one Job is exactly one attempt.
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [EXIT_PERMANENT],
                        },
                    },
                    # Evictions, preemption, node drains: not the runner's fault; the Job
                    # controller replaces the pod within the same attempt.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def shard_parts(spec: JobSpec, settings: OperatorSettings, part_pages: int) -> list[str]:
    """The page selections of ``spec``'s shards, ``part_pages`` each; none when one pod
    reads the document."""
    if settings.shard_threshold_pages < 1:
        return []
    return plan_parts(spec, part_pages, settings.shard_threshold_pages)


def build_sharded_job(
    resource: JSON,
    spec: JobSpec,
    attempt: int,
    parts: list[str],
    settings: OperatorSettings,
    manifest_secret: str,
) -> JSON:
    """``attempt`` as one Indexed Job: pod ``i`` (a shard) reads ``parts[i]`` into a stored
    part; :func:`build_merge_job` makes the result of them once every index succeeded."""
    job = build_job(resource, spec, attempt, settings, manifest_secret)
    job_spec = job["spec"]
    # Per index: a failed shard is retried alone, up to shard_retries times; the job fails
    # as soon as one index has failed for good (maxFailedIndexes 0), and exit 42 (the
    # document is at fault) fails it at once through the pod failure policy.
    del job_spec["backoffLimit"]
    job_spec.update(
        completionMode="Indexed",
        completions=len(parts),
        parallelism=min(settings.shard_parallelism, len(parts)),
        backoffLimitPerIndex=settings.shard_retries,
        maxFailedIndexes=0,
    )
    container = job_spec["template"]["spec"]["containers"][0]
    container["env"].append({"name": PAGE_PARTS_ENV, "value": json.dumps(parts)})
    return job


def build_merge_job(
    resource: JSON,
    spec: JobSpec,
    attempt: int,
    parts: int,
    settings: OperatorSettings,
    manifest_secret: str,
) -> JSON:
    """The Job that merges ``attempt``'s ``parts`` stored parts into the result and records
    the attempt's outcome; running it again after a restart writes the same result."""
    job = build_job(resource, spec, attempt, settings, manifest_secret)
    job["metadata"]["name"] = job_name(resource["metadata"]["name"], attempt, MERGE_STEP)
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        labels[LABEL_STEP] = MERGE_STEP
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "DOCJOBS_MERGE_PARTS", "value": str(parts)})
    return job


def is_sharded(job: JSON) -> bool:
    """Whether ``job`` is the Indexed Job of a sharded attempt (not its merge Job)."""
    return bool(job.get("spec", {}).get("completionMode") == "Indexed")


def shards_done(job: JSON) -> tuple[int, int]:
    """(shards succeeded, shards in all) of an Indexed Job."""
    status = job.get("status") or {}
    return int(status.get("succeeded") or 0), int(job.get("spec", {}).get("completions") or 1)


def shard_progress(job: JSON) -> Progress | None:
    """Pages of an Indexed Job's shards that succeeded, out of all its shards' pages: the
    Job itself carries its parts (``DOCJOBS_PAGE_PARTS``) and its ``completedIndexes``
    ("0,2-3"); ``None`` for a Job that has no parts."""
    containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    env = {e.get("name"): e.get("value") for c in containers for e in c.get("env") or []}
    try:
        parts = [str(part) for part in json.loads(env.get(PAGE_PARTS_ENV) or "[]")]
    except ValueError:
        return None
    if not parts:
        return None
    completed = str((job.get("status") or {}).get("completedIndexes") or "")
    done = sum(selection_size(parts[i]) for i in _indexes(completed) if 0 <= i < len(parts))
    return Progress(pages_done=done, pages_total=sum(map(selection_size, parts)))


def _indexes(completed: str) -> set[int]:
    """The numbers of a Job's ``completedIndexes`` ("1,3-5")."""
    found: set[int] = set()
    for span in filter(None, completed.split(",")):
        first, _, last = span.partition("-")
        found.update(range(int(first), int(last or first) + 1))
    return found


def runner_env(attempt: int, settings: OperatorSettings) -> list[JSON]:
    # The job spec stays out of the environment (a template can outgrow what exec allows),
    # and so do store credentials: the manifest holds the spec and per-object URLs.
    env: list[JSON] = [
        {"name": MANIFEST_FILE_ENV, "value": f"{MANIFEST_DIR}/{MANIFEST_KEY}"},
        {"name": "DOCJOBS_ATTEMPT", "value": str(attempt)},
    ]
    if settings.llm_secret:
        # Optional: a missing Claude key fails llm jobs readably (LlmNotConfigured) instead
        # of holding every runner pod in CreateContainerConfigError.
        ref: JSON = {"name": settings.llm_secret, "key": LLM_SECRET_KEY, "optional": True}
        env.append({"name": "DOCJOBS_LLM__API_KEY", "valueFrom": {"secretKeyRef": ref}})
    env.extend({"name": k, "value": v} for k, v in sorted(settings.runner_env.items()))
    return env


# --- reading Jobs and pods ----------------------------------------------------------------


def owner_name(obj: JSON) -> str | None:
    """Name of the DocumentJob that controls ``obj`` (a runner Job)."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(f"{DOMAIN}/"):
            return str(ref["name"])
    return None


def owner_uid(obj: JSON) -> str | None:
    """uid of the controller of ``obj`` (a DocumentJob for Jobs, a Job for pods)."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref["uid"])
    return None


def attempt_of(obj: JSON) -> int | None:
    value = (obj.get("metadata", {}).get("labels") or {}).get(LABEL_ATTEMPT, "")
    return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class JobEnd:
    """A runner Job's terminal condition."""

    succeeded: bool
    reason: str
    message: str


def job_end(job: JSON) -> JobEnd | None:
    """``Complete`` or ``Failed`` (not the interim ``FailureTarget``: its pods may still run)."""
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return JobEnd(
                condition["type"] == "Complete",
                condition.get("reason", ""),
                condition.get("message", ""),
            )
    return None


@dataclass(frozen=True)
class RunnerExit:
    exit_code: int
    message: str
    """The termination message: the runner's JSON summary, when it got to write one."""
    reason: str = ""
    """The kubelet's word for how the container ended (``OOMKilled``, ``Error``...)."""


def runner_exit(pods: list[JSON]) -> RunnerExit | None:
    """How the runner container ended, in the pod that finished last."""
    ended: list[tuple[str, RunnerExit]] = []
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if status.get("name") == CONTAINER and terminated:
                ended.append(
                    (
                        terminated.get("finishedAt") or "",
                        RunnerExit(
                            int(terminated["exitCode"]),
                            terminated.get("message") or "",
                            terminated.get("reason") or "",
                        ),
                    )
                )
    return max(ended, key=lambda pair: pair[0])[1] if ended else None


def summary_of(message: str) -> RunnerSummary | None:
    try:
        return RunnerSummary.model_validate_json(message) if message.strip() else None
    except ValidationError:
        return None


def observation_of(end: JobEnd, exit: RunnerExit | None, now: datetime) -> Observation:
    """What a finished runner Job says, from Kubernetes alone (see :func:`settle`)."""
    if end.reason == "DeadlineExceeded":
        return AttemptTimedOut(now)
    code = exit.exit_code if exit is not None else None
    summary = summary_of(exit.message) if exit is not None else None
    if exit is not None and exit.reason == "OOMKilled" and summary is None:
        # The container outgrew its memory limit before the runner's own (a lower data
        # limit) could refuse the allocation: the document needs more than a pod may have,
        # on every attempt.
        return RunnerExited(EXIT_PERMANENT, RunnerSummary(error=out_of_memory()), now)
    if code is None:
        if end.reason == "PodFailurePolicy":  # only exit 42 fails a Job by policy
            code = EXIT_PERMANENT
        elif not end.succeeded:
            return RunnerLost(f"runner Job failed ({end.reason or 'no reason'})", now)
        else:
            code = EXIT_OK
    if code == EXIT_OK and summary is None:
        # Success without a summary leaves no result to point at: run it again.
        missing = JobError(
            reason="SummaryMissing", message="the runner reported no result", permanent=False
        )
        return RunnerExited(EXIT_TRANSIENT, RunnerSummary(error=missing), now)
    return RunnerExited(code, summary or RunnerSummary(), now)


def out_of_memory() -> JobError:
    return JobError(
        reason="MemoryCeilingExceeded",
        message=(
            "The document needs more memory than its runner pod's limit"
            " (DOCJOBS_OPERATOR__ENGINES, limits.memory)"
        ),
        permanent=True,
    )


def reported(end: JobEnd, exit: RunnerExit | None) -> bool:
    """Whether the runner itself told how the attempt ended: an exit code with its summary
    as the termination message, on a Job that ended by itself. The runner writes that
    message after it stores the outcome, so both say the same and the store need not be read.
    """
    if end.reason == "DeadlineExceeded" or exit is None:
        return False
    return summary_of(exit.message) is not None


def settle(signal: Observation, recorded: RunOutcome | None) -> Observation:
    """How an attempt ended: the outcome its runner stored wins over every other signal about
    it (a deadline hit, a pod lost or a Job failed after the work was done), so finished
    work is never run again."""
    return signal if recorded is None else stored_end(recorded, signal.at)


def stored_end(recorded: RunOutcome, at: datetime) -> RunnerExited:
    return RunnerExited(recorded.exit_code, recorded.summary, at)


@dataclass(frozen=True)
class Unschedulable:
    since: datetime
    message: str


def unschedulable(pod: JSON) -> Unschedulable | None:
    """The scheduler's verdict on a pod it cannot place, and since when."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return None
    for condition in pod.get("status", {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            since = parse_time(condition.get("lastTransitionTime")) or datetime.now(UTC)
            return Unschedulable(since, condition.get("message") or "pod is unschedulable")
    return None
