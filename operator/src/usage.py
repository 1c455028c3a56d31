"""The operator records the usage of every DocumentJob it sees ended, whoever ended it (its
own step on a runner Job's end, an API or worker pod's warm workers, a cancel): one object
per job in the object store (:mod:`docjobs.usage.objects`), written from the operator alone
so that API replicas never count a job, and idempotent, so that a restarted operator that
sees the same ended jobs again writes the same objects.

The write runs on the scheduler's pool, as soon as the end is watched; a job is archived
only once its record is written, so a write that failed is made before the resource leaves
the cluster.

Records past their retention (``usage.retention_days``) are deleted by a sweep every
:data:`SWEEP_SECONDS` (the first one at start), on the scheduler's pool too.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from docjobs.config.usage import UsageSettings
from docjobs.domain.clock import utcnow
from docjobs.domain.models import TERMINAL_PHASE_NAMES
from docjobs.kube.client import JSON
from docjobs.kube.resources import job_of
from docjobs.usage.objects import StoredUsage, UsageObjectStore, forget_records_before
from docjobs.usage.records import count_in_metrics, usage_of
from docjobs.usage.retention import retained_from

log = logging.getLogger(__name__)
SWEEP_SECONDS = 3600.0
"""How often records past their retention are looked for; records are kept by the day."""


class UsageMeter:
    def __init__(
        self,
        store: UsageObjectStore | None,
        tenant_metrics: bool = False,
        retention_days: int = UsageSettings().retention_days,
    ) -> None:
        self.store = store
        self.tenant_metrics = tenant_metrics
        self.retention_days = retention_days
        self._next_sweep: datetime | None = None
        self.started = utcnow()
        self._written: set[str] = set()
        """Names (namespace/name) of the DocumentJobs whose record this process wrote."""
        self._guard = threading.Lock()

    def due(self, resource: JSON) -> bool:
        """Whether ``resource`` ended and its record is not yet written by this process."""
        status = resource.get("status") or {}
        if self.store is None or status.get("phase") not in TERMINAL_PHASE_NAMES:
            return False
        with self._guard:
            return _name(resource) not in self._written

    def record(self, resource: JSON) -> None:
        """Write the ended job's record (blocking); again if asked again, the same object."""
        if self.store is None:
            return
        job = job_of(resource)
        record = usage_of(job)
        StoredUsage(self.store, resource["metadata"]["namespace"]).put(record)
        with self._guard:
            first = _name(resource) not in self._written
            self._written.add(_name(resource))
        # Counters start from zero with the process: a job that ended before it started was
        # counted (or lost) with its predecessor's.
        if first and _ended_after(job.status.completed_at, self.started):
            count_in_metrics(record, self.tenant_metrics)

    def forget(self, resource: JSON) -> None:
        """The DocumentJob was deleted (archived, expired or erased)."""
        with self._guard:
            self._written.discard(_name(resource))

    def sweep_due(self, now: datetime) -> bool:
        """Whether a sweep is due; taken, it is not due again for :data:`SWEEP_SECONDS`."""
        if self.store is None or (self._next_sweep is not None and now < self._next_sweep):
            return False
        self._next_sweep = now + timedelta(seconds=SWEEP_SECONDS)
        return True

    def sweep(self, now: datetime) -> None:
        """Delete the records of days past their retention (blocking)."""
        assert self.store is not None
        try:
            gone = forget_records_before(self.store, retained_from(self.retention_days, now))
        except Exception as exc:  # the next sweep tries again; the records only wait
            log.warning("usage sweep failed: %s", exc)
            return
        if gone:
            log.info("usage: records of %d days past their retention deleted", gone)


def _name(resource: JSON) -> str:
    return f"{resource['metadata']['namespace']}/{resource['metadata']['name']}"


def _ended_after(ended: datetime | None, moment: datetime) -> bool:
    return ended is not None and ended >= moment
