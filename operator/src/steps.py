"""The operator's host of the lifecycle step (:func:`docjobs.domain.step.take_step`): the
DocumentJob's status subresource as its ledger, API calls as its effects.

A step reads the DocumentJob, asks the lifecycle about the observation the caller's
``choose`` makes of it, adds the bookkeeping every writer adds (:func:`bookkeep`) and the
caller's own note, replaces the status on condition of the read ``resourceVersion`` (a 409
is a :class:`~docjobs.domain.step.Conflict`: read again, choose again, ``conflict_retries``
tries in all), then carries out the decision's actions: stop the runner (delete its Job),
notify (count the end, the terminal hook), expire (delete the job's objects and the
DocumentJob).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from docjobs.domain.clock import utcnow
from docjobs.domain.lifecycle import Action, Decision, Observation
from docjobs.domain.models import TERMINAL_PHASE_NAMES, Job, JobError, JobStatus, Phase
from docjobs.domain.step import Conflict, Contended, Reading, Step, take_step
from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import DocumentJobStatus, job_of, status_of
from docjobs.kube.status import bookkeep, dump
from docjobs.metrics import record_finished
from docjobs.storage.presigned import SigningStore

from . import builders
from .agenda import Agenda, Ref, ref_of
from .metrics import RECONCILES
from .runners import RunnerJobs

log = logging.getLogger(__name__)
Amend = Callable[[DocumentJobStatus], DocumentJobStatus]
Seen = Step[JSON, DocumentJobStatus]
"""A DocumentJob after one step: ``record`` as written (or as read, when nothing changed)."""


@dataclass(frozen=True)
class Choice:
    """What a step makes of the DocumentJob it read."""

    observation: Observation | None = None
    """For the lifecycle to decide on; ``None``: nothing new about the job's lifecycle."""
    amend: Amend | None = None
    """A note of the operator's own, applied to the status after the decision."""


Choose = Callable[[JSON, Job], Choice]


@dataclass
class _Chosen:
    """Hands :func:`take_step` the observation of each read, then the note chosen with it
    from the same read (a refused tenant slot and its message go together)."""

    choose: Choose
    amend: Amend | None = field(default=None)

    def observe(self, resource: JSON, job: Job) -> Observation | None:
        choice = self.choose(resource, job)
        self.amend = choice.amend
        return choice.observation

    def note(self, status: DocumentJobStatus) -> DocumentJobStatus:
        return status if self.amend is None else self.amend(status)


@dataclass(frozen=True)
class StatusSubresource:
    """One DocumentJob's status, as a :class:`~docjobs.domain.step.Ledger`."""

    kube: KubeClient
    ref: Ref

    def read(self) -> Reading[JSON, DocumentJobStatus] | None:
        resource = self.kube.find(self.ref.path)
        if resource is None:
            RECONCILES.labels("gone").inc()
            return None
        try:
            return Reading(resource, job_of(resource), status_of(resource))
        except ValidationError as exc:
            self._reject(resource, exc)
            return None

    def keep(
        self, reading: Reading[JSON, DocumentJobStatus], decided: JobStatus
    ) -> DocumentJobStatus:
        return bookkeep(reading.record, reading.job.spec, reading.stored, decided)

    def write(
        self, reading: Reading[JSON, DocumentJobStatus], status: DocumentJobStatus, _: Decision
    ) -> JSON:
        return self._replace(reading.record, status)

    def _replace(self, resource: JSON, status: DocumentJobStatus) -> JSON:
        """Replace the status subresource; the read ``resourceVersion`` makes it conditional.

        A replace, not a merge patch: a merge patch would keep keys a new status no longer
        has (an earlier attempt's ``details``), and a replace states the whole decision."""
        body = {**resource, "status": dump(status)}
        path = documentjobs_path(self.ref.namespace, self.ref.name, "status")
        try:
            return self.kube.replace(path, body)
        except KubeError as exc:
            if exc.status == 409:
                raise Conflict from exc
            raise

    def _reject(self, resource: JSON, exc: ValidationError) -> None:
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
        log.warning("%s: %s", self.ref, message)
        with contextlib.suppress(Conflict):  # the next event brings it back here
            self._replace(resource, failed)


@dataclass(frozen=True)
class ClusterEffects:
    """The lifecycle's actions on a DocumentJob, as :class:`~docjobs.domain.step.Effects`."""

    kube: KubeClient
    store: SigningStore | None
    runners: RunnerJobs
    on_terminal: Callable[[Job, str], None]

    def stop_runner(self, resource: JSON, job: Job) -> None:
        ref = ref_of(resource)
        current = status_of(resource).current_job
        self.runners.delete(
            ref.namespace, current or builders.job_name(ref.name, job.status.attempts)
        )

    def notify(self, resource: JSON, job: Job) -> None:
        record_finished(job)
        self.on_terminal(job, ref_of(resource).namespace)

    def expire(self, resource: JSON, job: Job) -> None:
        ref = ref_of(resource)
        if self.store is not None:
            self.store.delete_prefix(f"{job.spec.tenant}/{job.spec.job_id}")
        log.info("%s: expired; deleting it and its objects", ref)
        self.kube.delete(ref.path, missing_ok=True)


class StatusSteps:
    def __init__(
        self, kube: KubeClient, effects: ClusterEffects, agenda: Agenda, tries: int
    ) -> None:
        self.kube = kube
        self.effects = effects
        self.agenda = agenda
        self.tries = tries

    def take(self, ref: Ref, choose: Choose) -> Seen | None:
        """One step of ``ref``; ``None`` if the DocumentJob is gone or unreadable."""
        chosen = _Chosen(choose)
        ledger = StatusSubresource(self.kube, ref)
        try:
            seen = take_step(
                ledger, chosen.observe, self.effects, tries=self.tries, amend=chosen.note
            )
        except Contended:
            RECONCILES.labels("conflict").inc(self.tries)
            raise
        if seen is None:
            return None
        if seen.conflicts:
            RECONCILES.labels("conflict").inc(seen.conflicts)
        RECONCILES.labels("written" if seen.wrote else "unchanged").inc()
        if Action.EXPIRE not in seen.decision.actions:  # an expired job needs no more looks
            self.agenda.track(seen.record, utcnow())
        return seen

    def note(self, ref: Ref, amend: Amend) -> Seen | None:
        """A step that only writes an operator's note (``amend``), if it changes anything."""
        return self.take(ref, lambda _resource, _job: Choice(amend=amend))
