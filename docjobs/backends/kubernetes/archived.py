"""Archived jobs as the API reads them: finished DocumentJobs the operator moved to the
object store (:mod:`docjobs.kube.archive`), answered exactly as they were from the watch
cache until their TTL ends, then as unknown.

A job the watch cache does not hold is looked up by its record (one GET: the key is the
tenant's and the job id's). The jobs read in the last :data:`FRESH_SECONDS` stay in a
small LRU with their resource, so polling an archived job, its webhook deliveries (read
right after it) and a sync wait on a duplicate's archived twin cost at most a GET every few
seconds, and the same ``Job`` object comes back meanwhile (the API keeps its rendered body
while it does). A job erased through another API replica reads as gone here within that
time. Every method that may reach the store blocks: the backend calls them through its
dependency monitor.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from docjobs.backends.base import JobQuery
from docjobs.domain.clock import utcnow
from docjobs.domain.idempotency import reusable
from docjobs.domain.models import Job
from docjobs.kube.archive import Archive, Listed, RecordStore, expires_at, listing_after, micros
from docjobs.kube.client import JSON
from docjobs.kube.resources import job_of, resource_name

RECENT = 4096
"""Archived jobs kept in memory after a read (a few KB each)."""
FRESH_SECONDS = 5.0
"""How long a record read is answered from memory: an archived job changes only when it is
erased (or expires, which each answer checks)."""


class ArchivedJobs:
    def __init__(
        self,
        store: RecordStore,
        namespace: str,
        watched: Callable[[str], bool],
        size: int = RECENT,
        fresh_seconds: float = FRESH_SECONDS,
    ) -> None:
        """``watched``: whether the watch cache holds a DocumentJob of this name (a job
        archived but not yet deleted is listed from there)."""
        self.archive = Archive(store)
        self.namespace = namespace
        self.size = size
        self.fresh_seconds = fresh_seconds
        self._watched = watched
        self._recent: OrderedDict[str, tuple[Job, JSON, float]] = OrderedDict()
        """Resource name -> the job, its resource, when its record was read (monotonic)."""
        self._lock = threading.Lock()

    # --- from memory only (non-blocking) ---------------------------------------------------

    def recent(self, job_id: str) -> Job | None:
        """The archived job if it was read lately and its TTL has not ended."""
        hit = self._recall(resource_name(job_id))
        return hit[0] if hit is not None and alive(hit[0]) else None

    def resource(self, job_id: str) -> JSON | None:
        """The archived resource of a job read lately (its webhook deliveries)."""
        hit = self._recall(resource_name(job_id))
        return hit[1] if hit is not None and alive(hit[0]) else None

    # --- from the store (blocking) ---------------------------------------------------------

    def find(self, tenant: str, job_id: str) -> Job | None:
        """The tenant's archived job; None if it was never archived, was erased, or its TTL
        has ended."""
        job = self.record(tenant, job_id)
        return job if job is not None and alive(job) else None

    def record(self, tenant: str, job_id: str) -> Job | None:
        """The tenant's archived job, its TTL ended or not (its id is then still taken)."""
        name = resource_name(job_id)
        hit = self._recall(name)
        if hit is None:
            resource = self.archive.read(self.namespace, tenant, job_id)
            if resource is None:
                return None
            hit = (job_of(resource), resource)
            with self._lock:
                self._recent[name] = (*hit, time.monotonic())
                while len(self._recent) > self.size:
                    self._recent.popitem(last=False)
        job = hit[0]
        return job if job.spec.tenant == tenant else None

    def successor(
        self, tenant: str, job_id_of: Callable[[int], str], sequence: int
    ) -> tuple[Job | None, int]:
        """From the ``sequence``-th job of one submission (``job_id_of`` names each) on, past
        its archived jobs: the first that answers a repeat of it, or None and the first
        sequence that no archived job holds."""
        while (job := self.record(tenant, job_id_of(sequence))) is not None:
            if alive(job) and reusable(job):
                return job, sequence
            sequence += 1
        return None, sequence

    def page(self, query: JobQuery) -> tuple[list[Job], int, bool]:
        """Up to ``query.limit`` of the tenant's archived jobs that pass the query, after its
        cursor, newest first; how many pass it on any page; whether more follow. Only a
        file-name or batch filter reads records beyond the page's: the rest is in the
        entries."""
        after = query.after
        start = listing_after(query.tenant, self.namespace, after) if after is not None else ""
        now = utcnow().timestamp()
        taken: list[Job] = []
        total = 0
        more = False
        for listed in self.archive.listed(self.namespace, query.tenant):
            if listed.expires <= now or not _passes(query, listed):
                continue
            if self._watched(resource_name(listed.job_id)):
                continue  # archived a moment ago, not deleted yet: listed from the cache
            later = listed.key > start
            job: Job | None = None
            if (
                query.file_name is not None
                or query.batch_id is not None
                or (later and len(taken) < query.limit)
            ):
                job = self.find(query.tenant, listed.job_id)
                if job is None or not query.matches(job):
                    continue
            total += 1
            if later and job is not None and len(taken) < query.limit:
                taken.append(job)
            elif later:
                more = True
        return taken, total, more

    def forget(self, job: Job) -> None:
        """The job was erased: its record and listing entry go."""
        self.archive.forget(self.namespace, job)
        with self._lock:
            self._recent.pop(resource_name(job.spec.job_id), None)

    def _recall(self, name: str) -> tuple[Job, JSON] | None:
        with self._lock:
            hit = self._recent.get(name)
            if hit is None:
                return None
            job, resource, read_at = hit
            if time.monotonic() - read_at > self.fresh_seconds:
                del self._recent[name]
                return None
            self._recent.move_to_end(name)
            return job, resource


def alive(job: Job) -> bool:
    """Whether an archived job's TTL has not ended."""
    return expires_at(job) > utcnow()


def _passes(query: JobQuery, listed: Listed) -> bool:
    """The query's filters an entry answers without its record (all but the file name)."""
    return (
        (query.phases is None or listed.phase in {p.value for p in query.phases})
        and (query.operation is None or listed.kind == query.operation)
        and (query.created_after is None or listed.created > micros(query.created_after))
        and (query.created_before is None or listed.created < micros(query.created_before))
    )
