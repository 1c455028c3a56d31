"""The operator's entry points: what kopf's handlers and the tick thread call.

:class:`Controller` is the facade the rest of the operator uses. Each entry point takes the
DocumentJob's lock (:meth:`Scheduler.lock`) and runs steps (:mod:`.steps`: read, decide,
write, act) about the lifecycle of its attempts (:mod:`.attempts`, :mod:`.runners`):

- ``reconcile``: cancel, start an attempt (within the tenant's cap), leave a claimed job to
  the API or worker pod that runs it or take over its lapsed claim, leave a job worker pods
  may claim to them for its grace (``claim_grace_seconds``), check the runner, archive a
  finished job (:mod:`.archive`), expire;
- ``job_changed`` / ``pod_changed``: a runner Job ended, vanished or moved on a shard, a
  runner pod waits for a node;
- ``track``: a DocumentJob changed: when it next needs a look without an event (the
  agenda), its tenant's slots, the attempts whose progress is followed, the queue depth;
- ``tick``: the looks that are due, the pods unschedulable for too long, the progress to read,
  the archived jobs past their TTL.

kopf never retries event handlers, so a failed step of ``job_changed`` (and of every look on
the pool) is looked at again after a backoff (:meth:`Scheduler.look_again`), never dropped.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime

from docjobs.config import OperatorSettings, RunnerSettings, UsageSettings
from docjobs.domain import lifecycle
from docjobs.domain.clock import utcnow
from docjobs.domain.models import Job, Phase
from docjobs.kube.claims import claim_of
from docjobs.kube.client import JSON, KubeClient
from docjobs.storage.presigned import SigningStore

from . import builders
from .agenda import Agenda, Ref, TenantSlots, ref_of
from .archive import Archiver
from .attempts import Attempts
from .batches import BatchEnded, BatchEnds
from .metrics import QUEUE
from .progress import Followed, ProgressWatch
from .queue_depth import QueueDepth
from .runners import RunnerJobs
from .scheduler import Scheduler
from .signals import StoredSignals
from .status import (
    ClaimGrace,
    Move,
    claim_held,
    is_current,
    next_move,
    with_pages_read,
    with_tenant_cap,
)
from .steps import Choice, ClusterEffects, StatusSteps
from .usage import UsageMeter

log = logging.getLogger(__name__)
ARCHIVE_SWEEP = Ref("", "archive-sweep")
"""Not a DocumentJob: the key under which the scheduler runs one archive sweep at a time."""
USAGE_SWEEP = Ref("", "usage-sweep")
"""Likewise, for the sweep of usage records past their retention."""
BATCH_SWEEP = Ref("", "batch-sweep")
"""Likewise, for the sweep of sealed batches whose end was not delivered."""


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
        tenant_metrics: bool = False,
        on_batch_end: BatchEnded | None = None,
        usage_retention_days: int = UsageSettings().retention_days,
    ) -> None:
        """``part_pages``: what one shard reads (``DOCJOBS_RUNNER__PART_PAGES``);
        ``tenant_metrics``: usage counters per tenant too (``DOCJOBS_USAGE__TENANT_METRICS``)."""
        self.kube = kube
        self.settings = settings
        self.store = store
        self.on_terminal = on_terminal
        self.on_seen = on_seen
        """Hears of every watched DocumentJob (the webhook outbox reads it)."""
        self.queue = QueueDepth(settings, part_pages)
        self.grace = ClaimGrace(
            settings.claim_grace_seconds,
            settings.shard_threshold_pages,
            part_pages,
            self.queue,
            tuple(settings.claimed_engines),
        )
        """How long jobs that worker pods may claim are left to them."""
        self.agenda = Agenda(settings, self.grace)
        self.slots = TenantSlots(max_running_per_tenant)
        self.progress = ProgressWatch(settings.progress_seconds)
        QUEUE.follow(self.queue)
        self.scheduler = Scheduler(settings, self.agenda, self.tick)
        self.signals = StoredSignals(store)
        self.archiver = Archiver(kube, store, settings)
        self.usage = UsageMeter(store, tenant_metrics, usage_retention_days)
        self.batches = BatchEnds(store, on_batch_end, settings.namespace)
        runners = RunnerJobs(kube, store, settings, part_pages)
        effects = ClusterEffects(kube, store, runners, on_terminal)
        self.steps = StatusSteps(kube, effects, self.agenda, settings.conflict_retries)
        self.attempts = Attempts(self.steps, runners, self.signals, self.progress, self.reconcile)

    # --- kopf handlers ---------------------------------------------------------------------

    def reconcile(self, ref: Ref) -> None:
        """Bring one DocumentJob forward: cancel, start an attempt, check its runner, expire."""
        with self.scheduler.lock(ref):
            now = utcnow()
            seen = self.steps.take(ref, functools.partial(self._look, ref=ref, now=now))
            if (
                seen is not None
                and seen.status.phase is Phase.PROCESSING
                and not claim_held(seen.record, now)  # an API pod runs it on its workers
            ):
                self.attempts.ensure_runner(ref, seen.record, seen.status)
            elif seen is not None and self.archiver.due(seen.record, now):
                self.usage.record(seen.record)  # never archived uncounted
                if self.batches.due(seen.record):
                    self.batches.record(seen.record)
                self.archiver.archive_job(ref.path, seen.record, now)

    def _look(self, resource: JSON, job: Job, *, ref: Ref, now: datetime) -> Choice:
        """What ``reconcile`` makes of the DocumentJob it read."""
        move = next_move(resource, job, now, self.grace)
        if move is Move.CANCEL:
            return Choice(lifecycle.CancelRequested(now))
        if move is Move.TAKE_OVER:
            claim = claim_of(resource)
            holder = claim.holder if claim is not None else ""
            return Choice(self.attempts.take_over(ref, job, holder, now))
        if move is Move.START:
            busy = self.slots.take(ref, job.spec.tenant)
            if busy is None:
                return Choice(lifecycle.AttemptStarted(now))
            return Choice(amend=functools.partial(with_tenant_cap, busy=busy))
        if move is Move.EXPIRE:
            return Choice(lifecycle.TimePassed(now))
        return Choice()

    def job_changed(self, event_type: str | None, job: JSON) -> None:
        """A runner Job changed or went away."""
        name = builders.owner_name(job)
        attempt = builders.attempt_of(job)
        if name is None or attempt is None:
            return
        ref = Ref(job["metadata"]["namespace"], name)
        end = builders.job_end(job)
        try:
            with self.scheduler.lock(ref):
                if end is not None:
                    self.attempts.job_finished(ref, job, attempt, end)
                elif event_type == "DELETED":
                    self.attempts.runner_vanished(ref, attempt, job["metadata"]["name"])
                elif builders.is_sharded(job):
                    done, total = builders.shards_done(job)
                    progress = builders.shard_progress(job)
                    self.attempts.note_shards(ref, attempt, done, total, progress)
        except Exception as exc:  # kopf never retries event handlers: the agenda does
            self.scheduler.look_again(ref, exc)
        else:
            self.scheduler.succeeded(ref)

    def pod_changed(self, event_type: str | None, pod: JSON) -> None:
        """Runner pods matter only while the scheduler cannot place them."""
        meta = pod["metadata"]
        name = (meta.get("annotations") or {}).get(builders.ANNOTATION_OWNER)
        attempt = builders.attempt_of(pod)
        if not name or attempt is None:
            return
        ref = Ref(meta["namespace"], name)
        verdict = None if event_type == "DELETED" else builders.unschedulable(pod)
        if self.agenda.pod(ref, attempt, verdict):
            with self.scheduler.lock(ref):
                self.attempts.note_waiting(ref, attempt, verdict.message if verdict else None)

    def track(self, event_type: str | None, resource: JSON) -> None:
        """A DocumentJob changed: note when it next needs a look without an event."""
        ref = ref_of(resource)
        if event_type == "DELETED":
            self.agenda.forget(ref)
            self.progress.forget(ref)
            self.scheduler.forget(ref)
            self.queue.forget(ref)
            freed = self.slots.forget(ref)
            self.usage.forget(resource)
            self.batches.forget(resource)
        else:
            now = utcnow()
            self.queue.seen(resource, now)  # first: a take moves the grace the agenda reads
            self.agenda.track(resource, now)
            tenant = str((resource.get("spec") or {}).get("tenant", ""))
            phase = (resource.get("status") or {}).get("phase")
            running = phase == Phase.PROCESSING.value
            # A claimed job runs on an API pod's workers, from its creation: it holds one of
            # its tenant's slots as a runner Job does.
            freed = self.slots.seen(ref, tenant, running or claim_of(resource) is not None)
            if self.on_seen is not None:
                self.on_seen(resource)
            if self.usage.due(resource):
                # Its own key: a progress read of the job in flight must not drop it.
                usage_ref = Ref(ref.namespace, f"{ref.name}/usage")
                self.scheduler.read(usage_ref, self.usage.record, resource)
            if self.batches.due(resource):
                batch_ref = Ref(ref.namespace, f"{ref.name}/batch")
                self.scheduler.read(batch_ref, self.batches.record, resource)
            attempts = (resource.get("status") or {}).get("attempts")
            self.progress.running(ref, attempts if running else None)
        for waiting in freed:  # a slot of their tenant is free: look at them now
            self.agenda.defer(waiting, utcnow())

    # --- the tick thread -------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        for ref in self.agenda.due(now):
            self.scheduler.submit(ref, self.reconcile, ref)
        for ref, stuck in self.agenda.stuck(now):
            self.scheduler.submit(
                ref, self.unschedulable_timeout, ref, stuck.attempt, stuck.pod.message
            )
        for ref, followed in self.progress.due():
            self.scheduler.read(ref, self.note_progress, ref, followed)
        if self.archiver.sweep_due(now):
            self.scheduler.read(ARCHIVE_SWEEP, self.archiver.sweep, now)
        if self.usage.sweep_due(now):
            self.scheduler.read(USAGE_SWEEP, self.usage.sweep, now)
        if self.batches.sweep_due(now):
            self.scheduler.read(BATCH_SWEEP, self.batches.sweep)

    def unschedulable_timeout(self, ref: Ref, attempt: int, message: str) -> None:
        """Fail an attempt whose pod no node could take, with the scheduler's words."""
        with self.scheduler.lock(ref):
            waited = self.settings.unschedulable_seconds
            self.attempts.unschedulable(ref, attempt, message, waited)

    def note_progress(self, ref: Ref, followed: Followed) -> None:
        """Show the pages a single-pod attempt has read, as its runner stored them; the
        status is written only when they changed."""
        progress = self.signals.progress(ref, followed.key)
        if progress is None or progress == followed.shown:
            return
        amend = functools.partial(
            with_pages_read, attempt=followed.attempt, job=followed.job, progress=progress
        )
        try:
            with self.scheduler.lock(ref):
                seen = self.steps.note(ref, amend)
        except Exception as exc:  # the next read tries again; no step of the job is lost
            log.info("%s: progress %s not shown: %s", ref, progress, exc)
            return
        if seen is not None and is_current(seen.status, followed.attempt):
            self.progress.shown(ref, followed, progress)
        else:
            self.progress.forget(ref)

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()

    def tick_age(self) -> float:
        """Seconds since the tick thread last ran (for the liveness probe)."""
        return self.scheduler.tick_age()
