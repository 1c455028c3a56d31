"""An attempt from its runner Job's creation to its end.

Attempts are crash-safe by ordering: status ``Processing`` (attempt n) is written first,
then Job ``<name>-a<n>`` is created (AlreadyExists: adopt it), then ``currentJob`` is set.
So after a restart a missing Job with ``currentJob`` unset was never created (create it),
and one with ``currentJob`` set has vanished (its recorded outcome, or RunnerLost). A
sharded attempt runs as one Indexed Job; once every shard succeeded its merge Job becomes
``currentJob``.

Finished work never runs again: the outcome a runner stored wins over every other signal
about its attempt (a deadline, a lost pod, a failed Job, an unschedulable pod), in
:meth:`Attempts.settle`, and the periodic check of a running attempt looks for it too.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from datetime import datetime

from docjobs.domain import lifecycle
from docjobs.domain.clock import utcnow
from docjobs.domain.lifecycle import Observation
from docjobs.domain.models import EXIT_TRANSIENT, Job, JobError, JobSpec, Progress, RunnerSummary
from docjobs.kube.client import JSON
from docjobs.kube.resources import DocumentJobStatus, job_of, status_of
from docjobs.kube.status import parse_time
from docjobs.storage.base import progress_key

from . import builders
from .agenda import Ref
from .metrics import ATTEMPT_SECONDS
from .progress import ProgressWatch
from .runners import RunnerJobs
from .signals import StoredSignals, StoreUnreachable
from .status import (
    is_current,
    runs,
    with_current_job,
    with_merge_job,
    with_shards_done,
    with_waiting,
)
from .steps import Choice, StatusSteps

log = logging.getLogger(__name__)


class Attempts:
    def __init__(
        self,
        steps: StatusSteps,
        runners: RunnerJobs,
        signals: StoredSignals,
        progress: ProgressWatch,
        again: Callable[[Ref], None],
    ) -> None:
        """``again``: look at a DocumentJob once more now (the controller's reconcile)."""
        self.steps = steps
        self.runners = runners
        self.signals = signals
        self.progress = progress
        self.again = again

    def ensure_runner(self, ref: Ref, resource: JSON, status: DocumentJobStatus) -> None:
        """The current attempt's runner Job exists (created, adopted, or found ended)."""
        attempt = status.attempts
        name = builders.job_name(ref.name, attempt)
        spec = job_of(resource).spec
        parts = self.runners.parts(spec)
        merging = status.current_job == builders.job_name(ref.name, attempt, builders.MERGE_STEP)
        if merging:  # every shard succeeded; the merge is idempotent, so (re)creating is safe
            name = status.current_job or name
        if status.current_job == name and not merging:  # created before: it must still be there
            job = self.runners.find(ref.namespace, name)
            if job is None:
                self.runner_vanished(ref, attempt, name)
                return
        else:
            job = self.runners.create_or_adopt(ref, resource, spec, attempt, name, parts, merging)
            self.steps.note(ref, functools.partial(with_current_job, attempt=attempt, job=name))
        end = builders.job_end(job)
        if end is not None:  # finished while nobody watched (operator down)
            self.job_finished(ref, job, attempt, end)
            return
        if not parts and not merging and self.signals.store is not None:
            key = progress_key(spec.tenant, spec.job_id, attempt)
            self.progress.follow(ref, attempt, name, key)
        if status.current_job == name:
            self.check_stored(ref, attempt, name)

    def job_finished(self, ref: Ref, job: JSON, attempt: int, end: builders.JobEnd) -> None:
        now = utcnow()
        if builders.is_sharded(job) and end.succeeded:
            self.merge_shards(ref, attempt)
            return
        exit = self.runners.exit_of(ref.namespace, job)
        signal = builders.observation_of(end, exit, now)
        ending = functools.partial(
            self._ending,
            attempt=attempt,
            signal=signal,
            reported=builders.reported(end, exit),
            sharded=builders.is_sharded(job),
        )
        seen = self.steps.take(ref, ending)
        if seen is None or not seen.applied:
            return
        outcome = "Complete" if end.succeeded else end.reason or "Failed"
        engine = (job["metadata"].get("labels") or {}).get(builders.LABEL_ENGINE, "")
        started = parse_time(job["metadata"].get("creationTimestamp"))
        if started is not None:
            ATTEMPT_SECONDS.labels(engine, outcome).observe((now - started).total_seconds())
        self.follow_up(ref, seen.status)

    def merge_shards(self, ref: Ref, attempt: int) -> None:
        """Every shard of ``attempt`` stored its part: its merge Job becomes the current one."""
        merge = builders.job_name(ref.name, attempt, builders.MERGE_STEP)
        seen = self.steps.note(ref, functools.partial(with_merge_job, attempt=attempt, job=merge))
        if seen is not None and runs(seen.status, attempt, merge):
            self.ensure_runner(ref, seen.record, seen.status)

    def runner_vanished(self, ref: Ref, attempt: int, name: str) -> None:
        lost = lifecycle.RunnerLost(f"runner Job {name} disappeared", utcnow())
        seen = self.steps.take(
            ref, functools.partial(self._ending, attempt=attempt, signal=lost, runner=name)
        )
        if seen is not None and seen.applied:
            log.warning("%s: runner Job %s vanished", ref, name)
            self.follow_up(ref, seen.status)

    def unschedulable(self, ref: Ref, attempt: int, message: str, waited: float) -> None:
        """Fail an attempt whose pod no node could take, with the scheduler's words."""
        error = JobError(
            reason="Unschedulable",
            message=f"no node could run the runner for {waited:g} s: {message}",
            permanent=False,
        )
        signal = lifecycle.RunnerExited(EXIT_TRANSIENT, RunnerSummary(error=error), utcnow())
        seen = self.steps.take(ref, functools.partial(self._ending, attempt=attempt, signal=signal))
        if seen is not None and seen.applied:
            log.warning("%s: attempt %d unschedulable: %s", ref, attempt, message)
            self.runners.delete(ref.namespace, builders.job_name(ref.name, attempt))
            self.follow_up(ref, seen.status)

    def check_stored(self, ref: Ref, attempt: int, name: str) -> None:
        """The periodic look at a running attempt: a stored outcome ends it even while its Job
        runs on (a pod whose end was never reported runs until the Job's deadline)."""
        stored = functools.partial(
            self._stored_end, ref=ref, attempt=attempt, runner=name, now=utcnow()
        )
        seen = self.steps.take(ref, stored)
        if seen is not None and seen.applied:
            log.info(
                "%s: attempt %d stored its outcome; its Job %s is no longer needed",
                ref,
                attempt,
                name,
            )
            self.runners.delete(ref.namespace, name)
            self.follow_up(ref, seen.status)

    def take_over(self, ref: Ref, job: Job, holder: str, now: datetime) -> Observation | None:
        """The attempt of a lapsed claim: what its holder stored wins (no second run); else
        it runs again, as this attempt's runner Job (:meth:`ensure_runner`)."""
        recorded = self.signals.outcome(job.spec, job.status.attempts)
        log.warning(
            "%s: the claim of %s lapsed during attempt %d; %s",
            ref,
            holder,
            job.status.attempts,
            "taking its stored outcome" if recorded else "running it as a Job",
        )
        return None if recorded is None else builders.stored_end(recorded, now)

    def note_shards(
        self, ref: Ref, attempt: int, done: int, total: int, progress: Progress | None
    ) -> None:
        """Show how far a sharded attempt is: ``2/4 shards done`` and its pages done."""
        self.steps.note(
            ref,
            functools.partial(
                with_shards_done, attempt=attempt, done=done, total=total, progress=progress
            ),
        )

    def note_waiting(self, ref: Ref, attempt: int, message: str | None) -> None:
        """Show why a runner waits (the scheduler's message) before the attempt fails;
        ``None``: it got a node after all."""
        self.steps.note(ref, functools.partial(with_waiting, attempt=attempt, message=message))

    def settle(self, spec: JobSpec, attempt: int, signal: Observation) -> Observation:
        """How an attempt ended, when its runner did not say so itself: the one place that
        weighs a deadline, a lost pod, a failed Job or an unschedulable pod against the
        outcome the runner stored, which wins (see :func:`builders.settle`)."""
        return builders.settle(signal, self.signals.outcome(spec, attempt))

    def follow_up(self, ref: Ref, status: DocumentJobStatus) -> None:
        """A lost runner requeues at once (Pending), a zero backoff retries at once."""
        if lifecycle.is_runnable(status, utcnow()):
            self.again(ref)

    # --- choices of the steps above --------------------------------------------------------

    def _ending(
        self,
        resource: JSON,
        job: Job,
        *,
        attempt: int,
        signal: Observation,
        runner: str | None = None,
        reported: bool = False,
        sharded: bool = False,
    ) -> Choice:
        """``signal`` ends ``attempt`` if that is still current (and ``runner`` still its
        Job, when given); the outcome its runner stored wins, unless the runner ``reported``
        its end itself (then both say the same). A ``sharded`` attempt that failed reports
        the CPU time its shards that succeeded kept for the merge it will not have."""
        if not is_current(job.status, attempt):
            return Choice()
        if runner is not None and status_of(resource).current_job != runner:
            return Choice()
        ended = signal if reported else self.settle(job.spec, attempt, signal)
        if sharded and isinstance(ended, lifecycle.RunnerExited):
            shards = len(self.runners.parts(job.spec))
            kept = self.signals.shards_cpu(job.spec, attempt, shards)
            ended = dataclasses.replace(ended, summary=ended.summary.charged(kept))
        return Choice(ended)

    def _stored_end(
        self, resource: JSON, job: Job, *, ref: Ref, attempt: int, runner: str, now: datetime
    ) -> Choice:
        """``attempt`` of ``runner`` ends if its runner stored the outcome."""
        if not runs(status_of(resource), attempt, runner):
            return Choice()
        try:
            recorded = self.signals.outcome(job.spec, attempt)
        except StoreUnreachable as exc:  # the Job still runs: the next look will do
            log.info("%s: stored outcome unreadable: %s", ref, exc)
            return Choice()
        return Choice(None if recorded is None else builders.stored_end(recorded, now))
