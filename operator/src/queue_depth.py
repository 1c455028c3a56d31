"""How many DocumentJobs wait and run, per runner pool and tenant: what autoscalers and
alerts read (:mod:`.metrics` exports it).

Fed from the watch of DocumentJobs (:meth:`Controller.track`), like the agenda, so a
restarted operator counts again from its initial listing. Only active jobs are kept: a job
leaves on its end or its deletion, so the map is as large as the queue, not the history.

A job *waits* while Pending (the operator has not started it, a tenant's cap holds it
back, or claiming workers have not taken it yet; timed from its creation) or Retrying
(timed from the end of its backoff: before that it is not due). It *runs* while Processing,
or while claimed (a warm worker holds it, from the claim on). Its pool is the one its
engine's runner pods go to (``settings.engines``), whoever ends up running it. A waiting
job is *claimable* now when a worker pod may take it
(:func:`docjobs.kube.claimable.claimable`) and it is due: what the workers' autoscaler
scales on.

The queue also knows when worker pods last *took* a job of each pool: a job it knew waiting
without a claim and then saw with the claim annotation (whatever the phase by then: kopf may
show only the latest of quick changes). A job created already claimed (an API pod's sync
request) is no take, nor a renewal. The claim grace counts from that moment too
(:class:`~docjobs.operator.status.ClaimGrace`): workers that keep taking jobs keep a
backlog of any depth, and only workers that took nothing for the grace let it spill into
runner Jobs. After a restart the operator knows no take until it sees one.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from docjobs.config import OperatorSettings
from docjobs.domain.clock import utcnow
from docjobs.domain.models import Phase, engine_of
from docjobs.kube.claimable import claimable
from docjobs.kube.claims import CLAIM_ANNOTATION, claim_of
from docjobs.kube.resources import job_of
from docjobs.kube.status import parse_time

from .agenda import Ref, ref_of

PENDING = "pending"
RETRYING = "retrying"
UNKNOWN_POOL = "unknown"
"""The pool of a DocumentJob that does not parse (written by hand, or by a newer API): it
still counts, so a queue never hides."""


@dataclass(frozen=True)
class Queued:
    """One active DocumentJob as the queue sees it."""

    pool: str
    tenant: str
    claimable: bool
    """Whether a worker pod may take it (its spec says so: read once)."""
    waiting: str | None
    """``pending`` or ``retrying`` while it waits to run; ``None`` while it runs."""
    since: datetime | None
    """When it began to wait: its creation, or the end of its backoff."""


@dataclass(frozen=True)
class Depth:
    """The queue at one moment, summed by labels."""

    waiting: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(pool, tenant, pending|retrying) to the number of jobs waiting."""
    running: dict[tuple[str, str], int] = field(default_factory=dict)
    """(pool, tenant) to the number of jobs running."""
    oldest: dict[str, float] = field(default_factory=dict)
    """Pool to the seconds its longest-waiting job has waited (0: none waits)."""
    claimable: dict[str, int] = field(default_factory=dict)
    """Pool to the number of waiting jobs a worker pod may claim now."""


class QueueDepth:
    def __init__(self, settings: OperatorSettings, part_pages: int) -> None:
        """``part_pages``: what one shard reads; with ``shard_threshold_pages`` it says
        which jobs are sharded, so never claimed."""
        self.settings = settings
        self.part_pages = part_pages
        self.by_tenant = settings.queue_metrics_by_tenant
        self._jobs: dict[Ref, Queued] = {}
        self._labels: set[tuple[str, str]] = set()
        """Every (pool, tenant) seen: reported as 0 once empty, as a labelled gauge is."""
        self._last_take: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def seen(self, resource: dict[str, Any], now: datetime | None = None) -> None:
        """Note a watched DocumentJob in its current state, seen at ``now``."""
        ref = ref_of(resource)
        with self._lock:
            known = self._jobs.get(ref)
        queued = self._queued(resource, known)
        annotations = resource["metadata"].get("annotations") or {}
        with self._lock:
            if (
                known is not None
                and known.waiting is not None
                and known.claimable
                and CLAIM_ANNOTATION in annotations
            ):
                at = now or utcnow()
                self._last_take[known.pool] = max(at, self._last_take.get(known.pool, at))
            if queued is None:
                self._jobs.pop(ref, None)
                return
            self._jobs[ref] = queued
            self._labels.add((queued.pool, queued.tenant))

    def forget(self, ref: Ref) -> None:
        with self._lock:
            self._jobs.pop(ref, None)

    def last_take(self, pool: str) -> datetime | None:
        """When a worker pod last took a waiting job of ``pool``, as far as this operator
        saw; None: not since it started."""
        with self._lock:
            return self._last_take.get(pool)

    def pool_of(self, resource: dict[str, Any]) -> str:
        """The pool of a watched DocumentJob (read once per job)."""
        with self._lock:
            known = self._jobs.get(ref_of(resource))
        return known.pool if known is not None else self._kind(resource)[0]

    def depth(self, now: datetime) -> Depth:
        with self._lock:
            jobs = list(self._jobs.values())
            labels = sorted(self._labels)
        waiting: Counter[tuple[str, str, str]] = Counter()
        running: Counter[tuple[str, str]] = Counter()
        pools = sorted({*self.settings.pools, *(p for p, _ in labels)})
        oldest = dict.fromkeys(pools, 0.0)
        takeable = dict.fromkeys(pools, 0)
        for job in jobs:
            if job.waiting is None:
                running[job.pool, job.tenant] += 1
                continue
            waiting[job.pool, job.tenant, job.waiting] += 1
            waited = 0.0 if job.since is None else (now - job.since).total_seconds()
            oldest[job.pool] = max(oldest[job.pool], waited)
            if job.claimable and waited >= 0:  # a retry is claimable once its backoff ends
                takeable[job.pool] += 1
        return Depth(
            waiting={
                (pool, tenant, phase): waiting[pool, tenant, phase]
                for pool, tenant in labels
                for phase in (PENDING, RETRYING)
            },
            running={label: running[label] for label in labels},
            oldest=oldest,
            claimable=takeable,
        )

    def _queued(self, resource: dict[str, Any], known: Queued | None) -> Queued | None:
        status = resource.get("status") or {}
        spec = resource.get("spec") or {}
        phase = status.get("phase") or Phase.PENDING.value
        if phase == Phase.PENDING.value and claim_of(resource) is None:
            waiting: str | None = PENDING
            # The job's own creation time (the API's ``created_at``, to the microsecond).
            since = parse_time(spec.get("createdAt")) or parse_time(
                resource["metadata"].get("creationTimestamp")
            )
        elif phase == Phase.RETRYING.value:
            waiting, since = RETRYING, parse_time(status.get("nextAttemptAt"))
        elif phase == Phase.PROCESSING.value or phase == Phase.PENDING.value:
            waiting, since = None, None
        else:  # ended: out of the queue
            return None
        tenant = str(spec.get("tenant", "")) if self.by_tenant else ""
        pool, may_claim = (known.pool, known.claimable) if known else self._kind(resource)
        return Queued(pool, tenant, may_claim, waiting, since)

    def _kind(self, resource: dict[str, Any]) -> tuple[str, bool]:
        """The pool of the job's engine, and whether a worker pod may claim it; read once
        per job, since a spec never changes either (a cancel ends the wait anyway)."""
        try:
            job = job_of(resource)
        except ValueError:  # malformed: its look fails it
            return UNKNOWN_POOL, False
        profile = self.settings.engines.get(engine_of(job.spec.operation))
        pool = profile.pool if profile is not None else UNKNOWN_POOL
        shards = self.settings.shard_threshold_pages
        return pool, claimable(job, shards, self.part_pages, self.settings.claimed_engines)
