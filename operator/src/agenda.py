"""What needs the operator's attention when no event will come: due retries, expiry,
periodic checks, and runner pods the scheduler cannot place.

Fed from the watch streams (so it is rebuilt by the initial listing after a restart) and
read by the controller's tick. A dict scanned once a tick: 100 000 DocumentJobs cost a few
milliseconds a second, simpler than a heap with invalidation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from docjobs.config import OperatorSettings
from docjobs.domain.models import TERMINAL_PHASE_NAMES, JobSpec, Phase
from docjobs.kube.claims import claim_of
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import job_of
from docjobs.kube.status import parse_time

from .archive import archive_time
from .builders import Unschedulable
from .status import ClaimGrace

_DEFAULT_TTL = JobSpec.model_fields["ttl_seconds_after_finished"].default


@dataclass(frozen=True, order=True)
class Ref:
    namespace: str
    name: str

    @property
    def path(self) -> str:
        return documentjobs_path(self.namespace, self.name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def ref_of(resource: dict[str, Any]) -> Ref:
    return Ref(resource["metadata"]["namespace"], resource["metadata"]["name"])


@dataclass(frozen=True)
class Stuck:
    attempt: int
    pod: Unschedulable


class Agenda:
    def __init__(self, settings: OperatorSettings, grace: ClaimGrace | None = None) -> None:
        """``grace``: how long jobs that worker pods may claim are left to them."""
        self.settings = settings
        self.grace = grace
        self._due: dict[Ref, datetime] = {}
        self._retry: dict[Ref, datetime] = {}
        """Looks after a failed step; kept apart so that tracking cannot postpone them."""
        self._stuck: dict[Ref, Stuck] = {}
        self._lock = threading.Lock()

    def track(self, resource: dict[str, Any], now: datetime) -> None:
        """Note when this DocumentJob next needs a look, from its current state."""
        when = self.next_look(resource, now)
        with self._lock:
            self._due[ref_of(resource)] = when

    def next_look(self, resource: dict[str, Any], now: datetime) -> datetime:
        status = resource.get("status") or {}
        spec = resource.get("spec") or {}
        phase = status.get("phase") or Phase.PENDING.value
        if phase in TERMINAL_PHASE_NAMES:
            ended = parse_time(status.get("completedAt")) or now
            expiry = ended + timedelta(seconds=spec.get("ttlSecondsAfterFinished", _DEFAULT_TTL))
            archived = archive_time(resource, self.settings)
            return expiry if archived is None else min(archived, expiry)
        if spec.get("cancel"):
            return now
        if (claim := claim_of(resource)) is not None:  # a renewal moves this look on
            return max(claim.expires_at, now)
        if (offered := self._offered_until(resource, phase)) is not None and offered > now:
            # Left to the worker pods: nothing to do before the grace ends, or a claim.
            pending = now + timedelta(seconds=self.settings.pending_grace_seconds)
            return offered if phase == Phase.RETRYING else min(offered, pending)
        if phase == Phase.RETRYING:
            return parse_time(status.get("nextAttemptAt")) or now
        if phase == Phase.PROCESSING:
            return now + timedelta(seconds=self.settings.resync_seconds)
        return now + timedelta(seconds=self.settings.pending_grace_seconds)

    def _offered_until(self, resource: dict[str, Any], phase: str) -> datetime | None:
        """When the grace of a waiting job that worker pods may claim ends (None: none)."""
        if self.grace is None or self.grace.seconds <= 0:
            return None
        if phase not in (Phase.PENDING, Phase.RETRYING):
            return None
        try:
            job = job_of(resource)
        except ValueError:  # malformed: the look will say so
            return None
        return self.grace.ends(resource, job)

    def defer(self, ref: Ref, until: datetime) -> None:
        with self._lock:
            self._due[ref] = until

    def retry(self, ref: Ref, at: datetime) -> None:
        """Look at this DocumentJob again at ``at`` (or earlier, when it is due before)."""
        with self._lock:
            self._retry[ref] = min(at, self._retry.get(ref, at))

    def forget(self, ref: Ref) -> None:
        with self._lock:
            self._due.pop(ref, None)
            self._retry.pop(ref, None)
            self._stuck.pop(ref, None)

    def due(self, now: datetime) -> list[Ref]:
        """DocumentJobs due now; they are taken off until tracked again."""
        with self._lock:
            due = {ref for ref, when in self._due.items() if when <= now}
            due |= {ref for ref, when in self._retry.items() if when <= now}
            for ref in due:
                self._due.pop(ref, None)
                self._retry.pop(ref, None)
        return sorted(due)

    def pod(self, ref: Ref, attempt: int, verdict: Unschedulable | None) -> bool:
        """Record a runner pod's scheduling verdict; True if it changed (newly stuck, a new
        message, or placed after all)."""
        with self._lock:
            before = self._stuck.get(ref)
            if verdict is None:
                if before is not None and before.attempt == attempt:
                    del self._stuck[ref]
                    return True
                return False
            self._stuck[ref] = Stuck(attempt, verdict)
            return before is None or before.attempt != attempt or before.pod != verdict

    def stuck(self, now: datetime) -> list[tuple[Ref, Stuck]]:
        """Runner pods unschedulable for longer than allowed; taken off the list."""
        limit = timedelta(seconds=self.settings.unschedulable_seconds)
        with self._lock:
            out = [(ref, s) for ref, s in self._stuck.items() if now - s.pod.since >= limit]
            for ref, _ in out:
                del self._stuck[ref]
        return out

    def __len__(self) -> int:
        return len(self._due)


class TenantSlots:
    """Running DocumentJobs per tenant, for the per-tenant cap (``max_running_per_tenant``).

    Fed from the watch streams, like the agenda, so a restarted operator counts the jobs
    already running, those an API pod runs under a claim (sync requests) included; an
    attempt this operator starts counts from the moment it is granted, before the watch
    shows it, so two workers cannot both take a tenant's last slot.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._running: dict[Ref, str] = {}
        self._waiting: dict[str, set[Ref]] = {}
        self._lock = threading.Lock()

    def seen(self, ref: Ref, tenant: str, running: bool) -> list[Ref]:
        """Note a watched DocumentJob; the jobs waiting for a slot that its end freed."""
        with self._lock:
            if running:
                self._running[ref] = tenant
                return []
            if self._running.pop(ref, None) is None:
                return []
            return sorted(self._waiting.pop(tenant, set()))

    def forget(self, ref: Ref) -> list[Ref]:
        """A DocumentJob was deleted; the jobs waiting for the slot it held."""
        with self._lock:
            tenant = self._running.pop(ref, None)
            for waiting in self._waiting.values():
                waiting.discard(ref)
            return [] if tenant is None else sorted(self._waiting.pop(tenant, set()))

    def take(self, ref: Ref, tenant: str) -> int | None:
        """A slot for ``ref``'s next attempt: ``None`` when granted, else how many jobs
        of ``tenant`` run (``ref`` then waits, and :meth:`seen` names it when one ends)."""
        if self.cap <= 0:
            return None
        with self._lock:
            if ref in self._running:
                return None
            busy = sum(1 for owner in self._running.values() if owner == tenant)
            if busy >= self.cap:
                self._waiting.setdefault(tenant, set()).add(ref)
                return busy
            self._running[ref] = tenant
            return None
