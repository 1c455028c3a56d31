"""Runner Jobs: the batch/v1 Job that runs one attempt (or merges a sharded attempt's
parts), created once its manifest is stored, adopted when it exists already.

Job names are deterministic (``<documentjob>-a<attempt>``, ``...-merge``), so a create that
meets ``AlreadyExists`` adopts the Job an earlier step (or an earlier operator) created; a
Job owned by an earlier DocumentJob of the same name is never adopted. The shape of a Job
is :mod:`.builders`; this module makes the API calls.
"""

from __future__ import annotations

from docjobs.config import OperatorSettings
from docjobs.domain.clock import utcnow
from docjobs.domain.models import JobSpec, engine_of
from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.paths import core_path, jobs_path
from docjobs.storage.presigned import SigningStore

from . import builders, manifests
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
        """Job ``name`` of ``attempt``: created now, or the one created before."""
        engine = engine_of(spec.operation).value
        try:
            body = self._body(resource, spec, attempt, parts, merging)
            job = self.kube.create(jobs_path(ref.namespace), body)
            RUNNER_JOBS.labels(engine, "created").inc()
            if attempt == 1:
                TIME_TO_JOB.labels(engine).observe(age(resource, utcnow()))
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
        return job

    def _body(
        self, resource: JSON, spec: JobSpec, attempt: int, parts: list[str], merging: bool
    ) -> JSON:
        """The attempt's Job (or its merge Job), once its manifest is stored."""
        if self.store is None:
            raise StoreUnreachable("no object store configured: runner pods need its URLs")
        settings = self.settings
        deadline = builders.attempt_deadline(spec, settings)
        shards = len(parts)
        try:
            url = manifests.write_manifest(self.store, spec, attempt, shards, settings, deadline)
        except Exception as exc:  # connection refused, timeouts, 5xx: the next look retries
            raise StoreUnreachable(
                f"cannot store the manifest of attempt {attempt}: {exc}"
            ) from exc
        if merging:
            return builders.build_merge_job(resource, spec, attempt, shards, settings, url)
        if parts:
            return builders.build_sharded_job(resource, spec, attempt, parts, settings, url)
        return builders.build_job(resource, spec, attempt, settings, url)

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
