"""Finished DocumentJobs leave the cluster for the object store (:mod:`docjobs.kube.archive`).

``archive_after_seconds`` after its end, a finished DocumentJob whose webhook deliveries are
settled is archived: its record and index entries are written, then the resource is deleted
(on condition that it did not change since it was read), so etcd, kopf and every watch
cache hold only active and recently finished jobs. A crash between the two leaves the
resource, archived again at the next look: the same record. A job whose deliveries are still
pending waits; the status write that settles them brings it back to the agenda.

The TTL of archived jobs is kept by a sweep of the archive's expiry index every
:data:`SWEEP_SECONDS`, on the scheduler's pool: it deletes the record, the listing entry
and the job's objects, and the operator holds nothing per archived job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from docjobs.config import OperatorSettings
from docjobs.domain.models import TERMINAL_PHASE_NAMES, JobSpec
from docjobs.kube.archive import Archive, RecordStore
from docjobs.kube.client import JSON, KubeClient
from docjobs.kube.outbox import is_pending
from docjobs.kube.status import parse_time

log = logging.getLogger(__name__)
SWEEP_SECONDS = 60.0
"""How often the expiry index is swept; it is kept by the minute."""
_DEFAULT_TTL = JobSpec.model_fields["ttl_seconds_after_finished"].default


def archive_time(resource: dict[str, Any], settings: OperatorSettings) -> datetime | None:
    """When the DocumentJob is to be archived; None while it runs, while its deliveries are
    pending, when archiving is off, or when its TTL ends first (it then simply expires)."""
    status = resource.get("status") or {}
    if settings.archive_after_seconds <= 0 or status.get("phase") not in TERMINAL_PHASE_NAMES:
        return None
    if is_pending(resource):
        return None
    ended = parse_time(status.get("completedAt"))
    if ended is None:
        return None
    if settings.archive_after_seconds >= _ttl(resource):
        return None
    return ended + timedelta(seconds=settings.archive_after_seconds)


def _ttl(resource: dict[str, Any]) -> float:
    return float((resource.get("spec") or {}).get("ttlSecondsAfterFinished", _DEFAULT_TTL))


def _expired(resource: dict[str, Any], now: datetime) -> bool:
    """Whether the job's TTL has ended: the look that saw it expired it, nothing to keep."""
    ended = parse_time((resource.get("status") or {}).get("completedAt"))
    return ended is not None and ended + timedelta(seconds=_ttl(resource)) <= now


class Archiver:
    """Archives finished DocumentJobs and sweeps the archived ones whose TTL ended."""

    def __init__(
        self, kube: KubeClient, store: RecordStore | None, settings: OperatorSettings
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.archive = Archive(store) if store is not None else None
        self._next_sweep: datetime | None = None

    def due(self, resource: JSON, now: datetime) -> bool:
        if self.archive is None:
            return False
        when = archive_time(resource, self.settings)
        return when is not None and when <= now and not _expired(resource, now)

    def archive_job(self, path: str, resource: JSON, now: datetime) -> None:
        """Write the job's record, then delete the resource as it was read (a 409 means it
        changed since: the next look decides again). A resource already gone was erased
        meanwhile if its input went too (an erase deletes the job's objects first): then its
        record goes as well. Otherwise another operator archived it (two overlap briefly
        during a rollout), and the record stays."""
        assert self.archive is not None
        job = self.archive.put(resource, now)
        version = resource["metadata"].get("resourceVersion")
        options = {"preconditions": {"resourceVersion": version}} if version else None
        if not self.kube.delete(path, options=options, missing_ok=True):
            if not self.archive.store.exists(job.spec.input.key):
                self.archive.withdraw(resource["metadata"]["namespace"], job)
                log.info("%s: erased while being archived, record withdrawn", job.spec.job_id)
            return
        log.info("%s: archived (%s)", job.spec.job_id, job.status.phase.value)

    def sweep_due(self, now: datetime) -> bool:
        """Whether a sweep is due; taken, it is not due again for :data:`SWEEP_SECONDS`."""
        if self.archive is None:
            return False
        if self._next_sweep is not None and now < self._next_sweep:
            return False
        self._next_sweep = now + timedelta(seconds=SWEEP_SECONDS)
        return True

    def sweep(self, now: datetime) -> None:
        assert self.archive is not None
        try:
            swept = self.archive.sweep(now)
        except Exception as exc:  # the next sweep tries again; nothing is lost
            log.warning("archive sweep failed: %s", exc)
            return
        if swept:
            log.info("archive: %d jobs past their TTL deleted", swept)
