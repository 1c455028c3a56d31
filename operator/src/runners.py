"""Runner Jobs: the batch/v1 Job that runs one attempt (or merges a sharded attempt's
parts), created once its manifest is stored, adopted when it exists already.

Job names are deterministic (``<documentjob>-a<attempt>``, ``...-merge``), so a create that
meets ``AlreadyExists`` adopts the Job an earlier step (or an earlier operator) created; a
Job owned by an earlier DocumentJob of the same name is never adopted. The shape of a Job
is :mod:`.builders`; this module makes the API calls. A Job's pod reads its manifest's URL
from a Secret written right after the Job (:mod:`.manifest_secrets`).
"""

from __future__ import annotations

from docjobs.config import OperatorSettings
from docjobs.domain.clock import utcnow
from docjobs.domain.models import JobSpec, engine_of
from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.paths import core_path, jobs_path
from docjobs.storage.presigned import SigningStore
from docjobs.tracing import record_span

from . import builders, manifest_secrets, manifests
from .agenda import Ref
from .metrics import RUNNER_JOBS, TIME_TO_JOB
from .signals import StoreUnreachable
from .status import age


class RunnerJobs:
    def __init__(
        self,
        kube: KubeClient,
        store: SigningStore | None,
        settings: OperatorSettings,
        part_pages: int,
    ) -> None:
        self.kube = kube
        self.store = store
        self.settings = settings
        self.part_pages = part_pages

    def parts(self, spec: JobSpec) -> list[str]:
        """The page selections of ``spec``'s shards; none when one pod reads it."""
        return builders.shard_parts(spec, self.settings, self.part_pages)

    def find(self, namespace: str, name: str) -> JSON | None:
        return self.kube.find(jobs_path(namespace, name))

    def create_or_adopt(
        self,
        ref: Ref,
        resource: JSON,
        spec: JobSpec,
        attempt: int,
        name: str,
        parts: list[str],
        merging: bool,
    ) -> JSON:
        """Job ``name`` of ``attempt``: created now, or the one created before; then its
        manifest Secret, so that its pod can start."""
        engine = engine_of(spec.operation).value
        url = self._manifest(spec, attempt, parts)
        try:
            body = self._body(resource, spec, attempt, parts, merging, name)
            job = self.kube.create(jobs_path(ref.namespace), body)
            RUNNER_JOBS.labels(engine, "created").inc()
            if attempt == 1:
                TIME_TO_JOB.labels(engine).observe(age(resource, utcnow()))
                record_span("queue wait", spec.traceparent, spec.created_at, {"job": name})
        except KubeError as exc:
            if exc.status != 409:
                raise
            found = self.find(ref.namespace, name)
            if found is None:
                raise  # AlreadyExists, then gone: the next look creates it
            job = found
            RUNNER_JOBS.labels(engine, "adopted").inc()
        if builders.owner_uid(job) != resource["metadata"]["uid"]:
            # A namesake DocumentJob's Job, still being garbage-collected.
            raise RuntimeError(f"{ref}: Job {name} belongs to an earlier DocumentJob")
        if builders.job_end(job) is None:  # an ended Job starts no more pods
            # After the Job: the Secret is owned by its uid. A crash in between leaves
            # currentJob unset, so the next look adopts the Job and writes the Secret.
            manifest_secrets.hand_over(self.kube, job, url)
        return job

    def _manifest(self, spec: JobSpec, attempt: int, parts: list[str]) -> str:
        """Stores ``attempt``'s manifest; a presigned URL of it."""
        if self.store is None:
            raise StoreUnreachable("no object store configured: runner pods need its URLs")
        settings = self.settings
        deadline = builders.attempt_deadline(spec, settings)
        try:
            return manifests.write_manifest(
                self.store, spec, attempt, len(parts), settings, deadline
            )
        except Exception as exc:  # connection refused, timeouts, 5xx: the next look retries
            raise StoreUnreachable(
                f"cannot store the manifest of attempt {attempt}: {exc}"
            ) from exc

    def _body(
        self,
        resource: JSON,
        spec: JobSpec,
        attempt: int,
        parts: list[str],
        merging: bool,
        name: str,
    ) -> JSON:
        """The attempt's Job ``name`` (or its merge Job), mounting a Secret of its own."""
        settings = self.settings
        secret = manifest_secrets.new_secret_name(name)
        if merging:
            return builders.build_merge_job(resource, spec, attempt, len(parts), settings, secret)
        if parts:
            return builders.build_sharded_job(resource, spec, attempt, parts, settings, secret)
        return builders.build_job(resource, spec, attempt, settings, secret)

    def exit_of(self, namespace: str, job: JSON) -> builders.RunnerExit | None:
        """How the runner of a finished ``job`` ended, as its pods tell."""
        # The Job controller labels its pods with the Job's name (Kubernetes >= 1.27).
        pods = self.kube.items(
            core_path(namespace, "pods"),
            {"batch.kubernetes.io/job-name": job["metadata"]["name"]},
        )
        uid = job["metadata"].get("uid")
        mine = [p for p in pods if builders.owner_uid(p) in (uid, None)]
        if builders.is_sharded(job):  # the shard that failed tells why, not the last one
            mine = [p for p in mine if (p.get("status") or {}).get("phase") == "Failed"]
        return builders.runner_exit(mine)

    def delete(self, namespace: str, name: str) -> None:
        # The Job goes now; the garbage collector deletes its pods (the runner gets SIGTERM).
        self.kube.delete(jobs_path(namespace, name), missing_ok=True)
