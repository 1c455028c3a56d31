"""Turns what the operator sees into lifecycle observations, and decisions into API calls.

Every change of a DocumentJob's status goes through :meth:`Controller._observe`: read the
resource, ask :func:`lifecycle.decide`, write the status with the read ``resourceVersion``
(a conflict means someone wrote in between: read again and decide again), then carry out
the actions. A per-DocumentJob lock is held across a whole step, so the status write and
the Job create or delete that follows it never interleave with another step of that job.

Attempts are crash-safe by ordering: status ``Processing`` (attempt n) is written first,
then Job ``<name>-a<n>`` is created (AlreadyExists: adopt it), then ``currentJob`` is set.
So after a restart a missing Job with ``currentJob`` unset was never created (create it),
and one with ``currentJob`` set has vanished (its recorded outcome, or RunnerLost).

Finished work never runs again: the outcome a runner stored wins over every other signal
about its attempt (a deadline, a lost pod, a failed Job), in :meth:`Controller._attempt_end`,
and the periodic check of a running attempt looks for it too. A step that fails (object
store or API server unreachable) is looked at again after a backoff, never dropped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from docjobs.config import RunnerSettings
from docjobs.domain import lifecycle
from docjobs.domain.clock import utcnow
from docjobs.domain.lifecycle import Action, Observation
from docjobs.domain.models import (
    EXIT_TRANSIENT,
    TERMINAL_PHASE_NAMES,
    Job,
    JobError,
    JobSpec,
    Phase,
    Progress,
    RunnerSummary,
    RunOutcome,
    engine_of,
)
from docjobs.kube.claims import claim_of
from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.paths import core_path, documentjobs_path, jobs_path
from docjobs.kube.resources import DocumentJobStatus, job_of, status_of
from docjobs.kube.status import bookkeep, dump, parse_time, with_progress
from docjobs.metrics import record_finished
from docjobs.storage.base import ObjectNotFound, outcome_key, progress_key
from docjobs.storage.presigned import SigningStore

from . import builders, manifests
from .agenda import Agenda, Ref, TenantSlots, ref_of
from .metrics import ATTEMPT_SECONDS, RECONCILES, RUNNER_JOBS, TIME_TO_JOB
from .progress import Followed, ProgressWatch
from .settings import OperatorSettings
from .status import PROCESSING, TENANT_CAP, WAITING, age, is_current

log = logging.getLogger(__name__)
Choose = Callable[[JSON, Job], Observation | None]
Amend = Callable[[DocumentJobStatus], DocumentJobStatus]
ANNOTATION_OWNER = builders.ANNOTATION_OWNER


class Conflict(Exception):
    pass


class StoreUnreachable(Exception):
    """The object store did not answer: the step is tried again shortly, never dropped."""


@dataclass(frozen=True)
class Seen:
    """A DocumentJob after one step: as written (or as read, when nothing changed)."""

    resource: JSON
    status: DocumentJobStatus
    applied: bool
    """Whether the step's observation was taken (not dismissed as stale)."""


class Controller:
    def __init__(
        self,
        kube: KubeClient,
        settings: OperatorSettings,
        store: SigningStore | None,
        on_terminal: Callable[[Job, str], None],
        max_running_per_tenant: int = 0,
        on_seen: Callable[[JSON], None] | None = None,
        part_pages: int = RunnerSettings().part_pages,
    ) -> None:
        """``part_pages``: what one shard reads (``DOCJOBS_RUNNER__PART_PAGES``)."""
        self.kube = kube
        self.settings = settings
        self.part_pages = part_pages
        self.store = store
        self.on_terminal = on_terminal
        self.on_seen = on_seen
        """Hears of every watched DocumentJob (the webhook outbox reads it)."""
        self.agenda = Agenda(settings)
        self.slots = TenantSlots(max_running_per_tenant)
        self._locks: dict[Ref, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._pool = ThreadPoolExecutor(settings.workers, "docjobs-due")
        self._inflight: set[Ref] = set()
        self.progress = ProgressWatch(settings.progress_seconds)
        self._reading: set[Ref] = set()
        """DocumentJobs whose stored progress is being read (apart from ``_inflight``, so a
        read never takes the place of a due look)."""
        self._failures: dict[Ref, int] = {}
        """Steps failed in a row, per DocumentJob: the backoff of the next look."""
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._last_tick = time.monotonic()

    # --- entry points (kopf handlers and the tick) ---------------------------------------

    def reconcile(self, ref: Ref) -> None:
        """Bring one DocumentJob forward: cancel, start an attempt, check its runner, expire."""
        with self._lock(ref):
            now = utcnow()
            claimed = False
            busy: int | None = None

            def choose(resource: JSON, job: Job) -> Observation | None:
                nonlocal claimed, busy
                busy = None
                phase = job.status.phase
                if job.cancel_requested and not phase.terminal:
                    return lifecycle.CancelRequested(now)
                claim = claim_of(resource)
                claimed = claim is not None and claim.held(now)
                if claimed:  # an API pod runs it on its own workers
                    return None
                if claim is not None and phase is Phase.PROCESSING:
                    return self._take_over(ref, job, claim.holder, now)
                if lifecycle.is_runnable(job.status, now):
                    busy = self.slots.take(ref, job.spec.tenant)
                    return lifecycle.AttemptStarted(now) if busy is None else None
                return lifecycle.TimePassed(now) if phase.terminal else None

            def amend(s: DocumentJobStatus) -> DocumentJobStatus:
                if busy is None or s.phase not in (Phase.PENDING, Phase.RETRYING):
                    return s
                reason = f"{TENANT_CAP}{busy} jobs of this tenant are running, its limit"
                return s.model_copy(update={"message": reason})

            seen = self._observe(ref, choose, amend)
            if seen is not None and not claimed and seen.status.phase is Phase.PROCESSING:
                self._ensure_runner(ref, seen.resource, seen.status)

    def _take_over(self, ref: Ref, job: Job, holder: str, now: datetime) -> Observation | None:
        """The attempt of a lapsed claim: what its holder stored wins (no second run); else
        it runs again, as this attempt's runner Job (``_ensure_runner``)."""
        recorded = self._recorded_outcome(job.spec, job.status.attempts)
        log.warning(
            "%s: the claim of %s lapsed during attempt %d; %s",
            ref,
            holder,
            job.status.attempts,
            "taking its stored outcome" if recorded else "running it as a Job",
        )
        return None if recorded is None else builders.stored_end(recorded, now)

    def job_changed(self, event_type: str | None, job: JSON) -> None:
        """A runner Job changed or went away."""
        name = builders.owner_name(job)
        attempt = builders.attempt_of(job)
        if name is None or attempt is None:
            return
        ref = Ref(job["metadata"]["namespace"], name)
        end = builders.job_end(job)
        try:
            with self._lock(ref):
                if end is not None:
                    self._job_finished(ref, job, attempt, end)
                elif event_type == "DELETED":
                    self._runner_vanished(ref, attempt, job["metadata"]["name"])
                elif builders.is_sharded(job):
                    done, total = builders.shards_done(job)
                    self._note_shards(ref, attempt, done, total, builders.shard_progress(job))
        except Exception as exc:  # kopf never retries event handlers: the agenda does
            self._look_again(ref, exc)
        else:
            self._succeeded(ref)

    def pod_changed(self, event_type: str | None, pod: JSON) -> None:
        """Runner pods matter only while the scheduler cannot place them."""
        meta = pod["metadata"]
        name = (meta.get("annotations") or {}).get(ANNOTATION_OWNER)
        attempt = builders.attempt_of(pod)
        if not name or attempt is None:
            return
        ref = Ref(meta["namespace"], name)
        verdict = None if event_type == "DELETED" else builders.unschedulable(pod)
        if self.agenda.pod(ref, attempt, verdict):
            with self._lock(ref):
                self._note_waiting(ref, attempt, verdict.message if verdict else None)

    def track(self, event_type: str | None, resource: JSON) -> None:
        """A DocumentJob changed: note when it next needs a look without an event."""
        ref = ref_of(resource)
        if event_type == "DELETED":
            self.agenda.forget(ref)
            self.progress.forget(ref)
            with self._locks_guard:
                self._locks.pop(ref, None)
                self._failures.pop(ref, None)
            freed = self.slots.forget(ref)
        else:
            self.agenda.track(resource, utcnow())
            tenant = str((resource.get("spec") or {}).get("tenant", ""))
            phase = (resource.get("status") or {}).get("phase")
            running = phase == Phase.PROCESSING.value
            # A claimed job runs on an API pod's workers, from its creation: it holds one of
            # its tenant's slots as a runner Job does.
            freed = self.slots.seen(ref, tenant, running or claim_of(resource) is not None)
            if self.on_seen is not None:
                self.on_seen(resource)
            attempts = (resource.get("status") or {}).get("attempts")
            self.progress.running(ref, attempts if running else None)
        for waiting in freed:  # a slot of their tenant is free: look at them now
            self.agenda.defer(waiting, utcnow())

    def tick(self, now: datetime) -> None:
        for ref in self.agenda.due(now):
            self._submit(ref, self.reconcile, ref)
        for ref, stuck in self.agenda.stuck(now):
            self._submit(ref, self.unschedulable_timeout, ref, stuck.attempt, stuck.pod.message)
        for ref, followed in self.progress.due():
            self._read_progress(ref, followed)

    def unschedulable_timeout(self, ref: Ref, attempt: int, message: str) -> None:
        """Fail an attempt whose pod no node could take, with the scheduler's words."""
        with self._lock(ref):
            now = utcnow()
            waited = self.settings.unschedulable_seconds
            error = JobError(
                reason="Unschedulable",
                message=f"no node could run the runner for {waited:g} s: {message}",
                permanent=False,
            )

            def choose(resource: JSON, job: Job) -> Observation | None:
                if not is_current(job.status, attempt):
                    return None
                summary = RunnerSummary(error=error)
                signal = lifecycle.RunnerExited(EXIT_TRANSIENT, summary, now)
                return self._attempt_end(job.spec, attempt, signal)

            seen = self._observe(ref, choose)
            if seen is not None and seen.applied:
                log.warning("%s: attempt %d unschedulable: %s", ref, attempt, message)
                self._delete_job(ref.namespace, builders.job_name(ref.name, attempt))
                self._follow_up(ref, seen.status)

    # --- the tick thread -------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._ticker = threading.Thread(target=self._loop, name="docjobs-tick", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.tick_seconds):
            self._last_tick = time.monotonic()
            try:
                self.tick(utcnow())
            except Exception:
                log.exception("tick failed")

    def tick_age(self) -> float:
        """Seconds since the tick thread last ran (for the liveness probe)."""
        return time.monotonic() - self._last_tick

    def _submit(self, ref: Ref, fn: Callable[..., None], *args: Any) -> None:
        with self._locks_guard:
            if ref in self._inflight:
                return
            self._inflight.add(ref)
        future = self._pool.submit(fn, *args)

        def done(f: Future[None]) -> None:
            with self._locks_guard:
                self._inflight.discard(ref)
            error = None if f.cancelled() else f.exception()
            if error is not None:
                self._look_again(ref, error)
            elif not f.cancelled():
                self._succeeded(ref)

        future.add_done_callback(done)

    def _look_again(self, ref: Ref, error: BaseException) -> None:
        """A step failed (a dependency unreachable): look again after a doubling backoff."""
        with self._locks_guard:
            failures = self._failures.get(ref, 0)
            self._failures[ref] = failures + 1
        delay = min(2.0**failures, self.settings.recheck_max_seconds)
        log.warning("%s: %s; looking again in %g s", ref, error, delay)
        self.agenda.retry(ref, utcnow() + timedelta(seconds=delay))

    def _succeeded(self, ref: Ref) -> None:
        with self._locks_guard:
            self._failures.pop(ref, None)

    # --- one step: read, decide, write, act ------------------------------------------------

    def _lock(self, ref: Ref) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(ref, threading.RLock())

    def _observe(self, ref: Ref, choose: Choose, amend: Amend | None = None) -> Seen | None:
        """Apply what ``choose`` observed (and ``amend``'s bookkeeping) to the status;
        ``None`` if the DocumentJob is gone or unreadable."""
        for _ in range(self.settings.conflict_retries):
            resource = self.kube.find(ref.path)
            if resource is None:
                RECONCILES.labels("gone").inc()
                return None
            try:
                job = job_of(resource)
                before = status_of(resource)
            except ValidationError as exc:
                self._reject(ref, resource, exc)
                return None
            observation = choose(resource, job)
            decision = (
                lifecycle.decide(job.spec, job.status, observation)
                if observation is not None
                else lifecycle.Decision(job.status)
            )
            after = bookkeep(resource, job.spec, before, decision.status)
            if amend is not None:
                after = amend(after)
            if after == before:
                RECONCILES.labels("unchanged").inc()
            else:
                try:
                    resource = self._write_status(ref, resource, after)
                except Conflict:
                    RECONCILES.labels("conflict").inc()
                    continue
                RECONCILES.labels("written").inc()
            self.agenda.track(resource, utcnow())
            self._act(ref, resource, job.model_copy(update={"status": decision.status}), decision)
            return Seen(resource, after, observation is not None)
        raise RuntimeError(f"{ref}: status changed under {self.settings.conflict_retries} tries")

    def _act(self, ref: Ref, resource: JSON, job: Job, decision: lifecycle.Decision) -> None:
        for action in decision.actions:
            if action is Action.STOP_RUNNER:
                current = status_of(resource).current_job
                self._delete_job(
                    ref.namespace, current or builders.job_name(ref.name, job.status.attempts)
                )
            elif action is Action.NOTIFY:
                record_finished(job)
                self.on_terminal(job, ref.namespace)
            elif action is Action.EXPIRE:
                if self.store is not None:
                    self.store.delete_prefix(f"{job.spec.tenant}/{job.spec.job_id}")
                log.info("%s: expired; deleting it and its objects", ref)
                self.kube.delete(ref.path, missing_ok=True)

    def _follow_up(self, ref: Ref, status: DocumentJobStatus) -> None:
        """A lost runner requeues at once (Pending), a zero backoff retries at once."""
        if lifecycle.is_runnable(status, utcnow()):
            self.reconcile(ref)

    # --- runners ---------------------------------------------------------------------------

    def _ensure_runner(self, ref: Ref, resource: JSON, status: DocumentJobStatus) -> None:
        attempt = status.attempts
        name = builders.job_name(ref.name, attempt)
        jobs = jobs_path(ref.namespace)
        spec = job_of(resource).spec
        engine = engine_of(spec.operation).value
        parts = builders.shard_parts(spec, self.settings, self.part_pages)
        merging = status.current_job == builders.job_name(ref.name, attempt, builders.MERGE_STEP)
        job: JSON | None = None
        if merging:  # every shard succeeded; the merge is idempotent, so (re)creating is safe
            name = status.current_job or name
        if status.current_job == name and not merging:  # created before: it must still be there
            job = self.kube.find(jobs_path(ref.namespace, name))
            if job is None:
                self._runner_vanished(ref, attempt, name)
                return
        else:
            try:
                body = self._runner_body(resource, spec, attempt, parts, merging)
                job = self.kube.create(jobs, body)
                RUNNER_JOBS.labels(engine, "created").inc()
                if attempt == 1:
                    TIME_TO_JOB.labels(engine).observe(age(resource, utcnow()))
            except KubeError as exc:
                if exc.status != 409:
                    raise
                job = self.kube.find(jobs_path(ref.namespace, name))
                if job is None:
                    raise  # AlreadyExists, then gone: the next look creates it
                RUNNER_JOBS.labels(engine, "adopted").inc()
            if builders.owner_uid(job) != resource["metadata"]["uid"]:
                # A namesake DocumentJob's Job, still being garbage-collected.
                raise RuntimeError(f"{ref}: Job {name} belongs to an earlier DocumentJob")

            def amend(s: DocumentJobStatus) -> DocumentJobStatus:
                return s.model_copy(update={"current_job": name}) if s.attempts == attempt else s

            self._observe(ref, lambda _r, _j: None, amend)
        end = builders.job_end(job)
        if end is not None:  # finished while nobody watched (operator down)
            self._job_finished(ref, job, attempt, end)
            return
        if not parts and not merging and self.store is not None:
            key = progress_key(spec.tenant, spec.job_id, attempt)
            self.progress.follow(ref, attempt, name, key)
        if status.current_job == name:
            self._check_stored(ref, attempt, name)

    def _runner_body(
        self, resource: JSON, spec: JobSpec, attempt: int, parts: list[str], merging: bool
    ) -> JSON:
        """The attempt's Job (or its merge Job), once its manifest is stored."""
        if self.store is None:
            raise StoreUnreachable("no object store configured: runner pods need its URLs")
        deadline = builders.attempt_deadline(spec, self.settings)
        try:
            url = manifests.write_manifest(
                self.store, spec, attempt, len(parts), self.settings, deadline
            )
        except Exception as exc:  # connection refused, timeouts, 5xx: the next look retries
            raise StoreUnreachable(
                f"cannot store the manifest of attempt {attempt}: {exc}"
            ) from exc
        if merging:
            return builders.build_merge_job(resource, spec, attempt, len(parts), self.settings, url)
        if parts:
            return builders.build_sharded_job(resource, spec, attempt, parts, self.settings, url)
        return builders.build_job(resource, spec, attempt, self.settings, url)

    def _job_finished(self, ref: Ref, job: JSON, attempt: int, end: builders.JobEnd) -> None:
        now = utcnow()
        sharded = builders.is_sharded(job)
        if sharded and end.succeeded:
            self._merge_shards(ref, attempt)
            return
        # The Job controller labels its pods with the Job's name (Kubernetes >= 1.27).
        pods = self.kube.items(
            core_path(ref.namespace, "pods"),
            {"batch.kubernetes.io/job-name": job["metadata"]["name"]},
        )
        uid = job["metadata"].get("uid")
        mine = [p for p in pods if builders.owner_uid(p) in (uid, None)]
        if sharded:  # the shard that failed tells why, not the last one that succeeded
            mine = [p for p in mine if (p.get("status") or {}).get("phase") == "Failed"]
        exit = builders.runner_exit(mine)

        def choose(resource: JSON, current: Job) -> Observation | None:
            if not is_current(current.status, attempt):
                return None
            signal = builders.observation_of(end, exit, now)
            if builders.reported(end, exit):
                return signal
            return self._attempt_end(current.spec, attempt, signal)

        seen = self._observe(ref, choose)
        if seen is None or not seen.applied:
            return
        outcome = "Complete" if end.succeeded else end.reason or "Failed"
        engine = (job["metadata"].get("labels") or {}).get(builders.LABEL_ENGINE, "")
        started = parse_time(job["metadata"].get("creationTimestamp"))
        if started is not None:
            ATTEMPT_SECONDS.labels(engine, outcome).observe((now - started).total_seconds())
        self._follow_up(ref, seen.status)

    def _merge_shards(self, ref: Ref, attempt: int) -> None:
        """Every shard of ``attempt`` stored its part: its merge Job becomes the current one."""
        merge = builders.job_name(ref.name, attempt, builders.MERGE_STEP)

        def amend(s: DocumentJobStatus) -> DocumentJobStatus:
            current = s.phase is Phase.PROCESSING and s.attempts == attempt
            return s.model_copy(update={"current_job": merge}) if current else s

        seen = self._observe(ref, lambda _r, _j: None, amend)
        if (
            seen is not None
            and is_current(seen.status, attempt)
            and seen.status.current_job == merge
        ):
            self._ensure_runner(ref, seen.resource, seen.status)

    def _runner_vanished(self, ref: Ref, attempt: int, name: str) -> None:
        now = utcnow()

        def choose(resource: JSON, job: Job) -> Observation | None:
            if not is_current(job.status, attempt) or status_of(resource).current_job != name:
                return None
            lost = lifecycle.RunnerLost(f"runner Job {name} disappeared", now)
            return self._attempt_end(job.spec, attempt, lost)

        seen = self._observe(ref, choose)
        if seen is not None and seen.applied:
            log.warning("%s: runner Job %s vanished", ref, name)
            self._follow_up(ref, seen.status)

    def _note_shards(
        self, ref: Ref, attempt: int, done: int, total: int, progress: Progress | None
    ) -> None:
        """Show how far a sharded attempt is: ``2/4 shards done`` and its pages done."""
        text = f"{PROCESSING}: {done}/{total} shards done"

        def amend(s: DocumentJobStatus) -> DocumentJobStatus:
            if s.phase is not Phase.PROCESSING or s.attempts != attempt:
                return s
            if progress is not None:
                s = with_progress(s, progress)
            return s.model_copy(update={"message": text})

        self._observe(ref, lambda _r, _j: None, amend)

    def _read_progress(self, ref: Ref, followed: Followed) -> None:
        """Read a followed attempt's stored progress on the pool, one read per job at a time."""
        with self._locks_guard:
            if ref in self._reading:
                return
            self._reading.add(ref)

        def done(_: Future[None]) -> None:
            with self._locks_guard:
                self._reading.discard(ref)

        self._pool.submit(self.note_progress, ref, followed).add_done_callback(done)

    def note_progress(self, ref: Ref, followed: Followed) -> None:
        """Show the pages a single-pod attempt has read, as its runner stored them; the
        status is written only when they changed."""
        progress = self._stored_progress(ref, followed.key)
        if progress is None or progress == followed.shown:
            return

        def amend(s: DocumentJobStatus) -> DocumentJobStatus:
            if not is_current(s, followed.attempt) or s.current_job != followed.job:
                return s
            return with_progress(s, progress)

        try:
            with self._lock(ref):
                seen = self._observe(ref, lambda _r, _j: None, amend)
        except Exception as exc:  # the next read tries again; no step of the job is lost
            log.info("%s: progress %s not shown: %s", ref, progress, exc)
            return
        if seen is not None and is_current(seen.status, followed.attempt):
            self.progress.shown(ref, followed, progress)
        else:
            self.progress.forget(ref)

    def _stored_progress(self, ref: Ref, key: str) -> Progress | None:
        """The progress a runner stored at ``key``; ``None`` when none (yet) or unreadable."""
        if self.store is None:
            return None
        try:
            return Progress.model_validate_json(b"".join(self.store.iter_chunks(key)))
        except ObjectNotFound:  # the runner has not opened the document yet
            return None
        except ValidationError as exc:
            log.warning("%s: stored progress at %s unreadable: %s", ref, key, exc)
            return None
        except Exception as exc:  # the object store is down: the outcome check reports it
            log.info("%s: object store unreachable reading %s: %s", ref, key, exc)
            return None

    def _note_waiting(self, ref: Ref, attempt: int, message: str | None) -> None:
        """Show why a runner waits (the scheduler's message) before the attempt fails;
        ``None``: it got a node after all."""
        text = f"{WAITING}{message}" if message else PROCESSING

        def amend(s: DocumentJobStatus) -> DocumentJobStatus:
            ok = s.phase is Phase.PROCESSING and s.attempts == attempt
            if not ok or (message is None and not s.message.startswith(WAITING)):
                return s
            return s.model_copy(update={"message": text})

        self._observe(ref, lambda _r, _j: None, amend)

    def _attempt_end(self, spec: JobSpec, attempt: int, signal: Observation) -> Observation:
        """How an attempt ended, when its runner did not say so itself: the one place that
        weighs a deadline, a lost pod, a failed Job or an unschedulable pod against the
        outcome the runner stored, which wins (see :func:`builders.settle`)."""
        return builders.settle(signal, self._recorded_outcome(spec, attempt))

    def _check_stored(self, ref: Ref, attempt: int, name: str) -> None:
        """The periodic look at a running attempt: a stored outcome ends it even while its Job
        runs on (a pod whose end was never reported runs until the Job's deadline)."""
        now = utcnow()

        def choose(resource: JSON, job: Job) -> Observation | None:
            if not is_current(job.status, attempt) or status_of(resource).current_job != name:
                return None
            try:
                recorded = self._recorded_outcome(job.spec, attempt)
            except StoreUnreachable as exc:  # the Job still runs: the next look will do
                log.info("%s: stored outcome unreadable: %s", ref, exc)
                return None
            return None if recorded is None else builders.stored_end(recorded, now)

        seen = self._observe(ref, choose)
        if seen is not None and seen.applied:
            log.info(
                "%s: attempt %d stored its outcome; its Job %s is no longer needed",
                ref,
                attempt,
                name,
            )
            self._delete_job(ref.namespace, name)
            self._follow_up(ref, seen.status)

    def _recorded_outcome(self, spec: JobSpec, attempt: int) -> RunOutcome | None:
        if self.store is None:
            return None
        key = outcome_key(spec.tenant, spec.job_id, attempt)
        try:
            return RunOutcome.model_validate_json(b"".join(self.store.iter_chunks(key)))
        except (ObjectNotFound, ValidationError):
            return None
        except Exception as exc:  # connection refused, timeouts, 5xx: nothing to conclude
            raise StoreUnreachable(f"object store unreachable reading {key}: {exc}") from exc

    def _reject(self, ref: Ref, resource: JSON, exc: ValidationError) -> None:
        """A spec the models refuse (the CRD cannot check everything): fail it for good."""
        status = resource.get("status") or {}
        if status.get("phase") in TERMINAL_PHASE_NAMES:
            return
        message = f"invalid spec: {exc.errors()[0].get('msg', exc)}"[:500]
        failed = DocumentJobStatus(
            phase=Phase.FAILED,
            completed_at=utcnow(),
            error=JobError(reason="InvalidSpec", message=message, permanent=True),
            message=message,
        )
        log.warning("%s: %s", ref, message)
        with contextlib.suppress(Conflict):  # the next event brings it back here
            self._write_status(ref, resource, failed)

    def _delete_job(self, namespace: str, name: str) -> None:
        # The Job goes now; the garbage collector deletes its pods (the runner gets SIGTERM).
        self.kube.delete(jobs_path(namespace, name), missing_ok=True)

    def _write_status(self, ref: Ref, resource: JSON, status: DocumentJobStatus) -> JSON:
        """Replace the status subresource; the read ``resourceVersion`` makes it conditional.

        A replace, not a merge patch: a merge patch would keep keys a new status no longer
        has (an earlier attempt's ``details``), and a replace states the whole decision."""
        body = {**resource, "status": dump(status)}
        try:
            return self.kube.replace(documentjobs_path(ref.namespace, ref.name, "status"), body)
        except KubeError as exc:
            if exc.status == 409:
                raise Conflict from exc
            raise
