"""Kubernetes backend: each job is a DocumentJob in one namespace, its files live in S3.

The operator does the work; this side creates DocumentJobs, asks for cancellation through
``spec.cancel``, and reads everything else from a watch cache, so polling a job costs the
API server nothing. A finished job the operator archived to the object store (and deleted
from the cluster) is read from its record (:mod:`.archived`) exactly as before; after its
TTL the job reads as unknown (404), there is no tombstone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import sys
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager
from datetime import date
from typing import Any, ParamSpec, TypeVar

from docjobs.backends.base import (
    JobPage,
    JobQuery,
    ListPosition,
    Submission,
    job_spec,
    json_result,
    listing_position,
    opened_result,
    store_input,
)
from docjobs.backends.dependencies import (
    KUBERNETES,
    OBJECT_STORE,
    DependencyMonitor,
    DependencyUnavailable,
)
from docjobs.config import Settings
from docjobs.domain.batches import Batch, BatchState
from docjobs.domain.events import job_view
from docjobs.domain.idempotency import reusable
from docjobs.domain.models import Engine, Job, Phase, engine_of
from docjobs.kube.batches import StoredBatches, batch_state
from docjobs.kube.cache import WatchCache
from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import ANNOTATION_BATCH_SEALED, job_of, resource_name, to_resource
from docjobs.storage.base import object_keys
from docjobs.storage.s3 import S3Store
from docjobs.usage.counted import MonthUsage, RecordedMonths
from docjobs.usage.objects import StoredUsage
from docjobs.usage.records import UsageRecord
from docjobs.webhooks.delivery import DeliveryAttempt
from docjobs.webhooks.records import DeliveryRecord

from .archived import ArchivedJobs, alive
from .claimed import ClaimedJobs
from .keys import SecretKeyStore
from .opened import OpenedResults
from .templates import ResourceTemplateStore
from .webhooks import SecretWebhookStore

log = logging.getLogger("docjobs.kube")
P = ParamSpec("P")
R = TypeVar("R")


MAX_SUCCESSOR_TRIES = 10
"""Successor names tried in one submission; more are taken only while the cache lags."""


def job_id_of_fingerprint(fingerprint: str, sequence: int = 1) -> str:
    """Same submission, same id, same resource name: the API server's AlreadyExists is our
    idempotency check, race-free across API replicas. A failed or cancelled job is followed
    by ``job_<hex>-2``, then ``-3``...: concurrent retries still agree on one name."""
    base = f"job_{fingerprint[:24]}"
    return base if sequence == 1 else f"{base}-{sequence}"


def submission_of(job: Job) -> tuple[str, str | None]:
    """The watch cache's index key: jobs of one tenant's same submission share it."""
    return job.spec.tenant, job.spec.fingerprint


def tenant_listing(job: Job) -> tuple[Hashable, ListPosition]:
    """The watch cache's groups: each tenant's jobs in the order listings read them."""
    return job.spec.tenant, listing_position(job)


def sequence_of(job_id: str) -> int:
    """1 for ``job_<hex>``, n for its n-th successor ``job_<hex>-n``."""
    _, dash, number = job_id.rpartition("-")
    return int(number) if dash and number.isdigit() else 1


class KubeBackend:
    def __init__(self, settings: Settings, client: KubeClient, objects: S3Store) -> None:
        """``client`` and ``objects`` come from :mod:`docjobs.bootstrap`."""
        kube = settings.kubernetes
        self.settings = settings
        self.namespace = kube.namespace
        self.client = client
        self.objects = objects
        self.jobs: WatchCache[Job] = WatchCache(
            self.client,
            documentjobs_path(self.namespace),
            self._parse,
            watch_timeout_seconds=kube.watch_timeout_seconds,
            name="documentjobs-cache",
            index=submission_of,
            group=tenant_listing,
            dropped=self._forget_delivery_note,
        )
        self.keys = SecretKeyStore(
            self.client,
            self.namespace,
            kube.keys_secret,
            kube.watch_timeout_seconds,
            plans=settings.rate_limits.plans,
        )
        self.templates = ResourceTemplateStore(
            self.client, self.namespace, settings.limits.template_bounds()
        )
        self.archived = ArchivedJobs(
            objects, self.namespace, lambda name: self.jobs.get(name) is not None
        )
        self._delivery_notes: dict[str, JSON] = {}
        """DocumentJob name -> its webhook outbox (``status.webhooks``), for the cached jobs
        that have one: the cache lets go of a note with its job (``_forget_delivery_note``)."""
        self.webhooks = SecretWebhookStore(
            self.client,
            self.namespace,
            kube.webhooks_secret,
            read_job=self._delivery_note,
            archive=self.archived.archive,
        )
        self.monitor = DependencyMonitor(
            {
                KUBERNETES: lambda: self.client.get_text("/readyz"),
                OBJECT_STORE: self.objects.prepare,
            },
            threads=settings.server.dependency_threads,
            stall_seconds=settings.server.stall_seconds,
        )
        self.results = OpenedResults(objects, self.monitor)
        self.claimed = ClaimedJobs(settings, self.client, self.jobs, self.monitor, self.results)
        self.recorded_months = RecordedMonths(self.usage, settings.usage.quota_fresh_seconds)

    def _parse(self, resource: JSON) -> Job | None:
        """None for a DocumentJob being deleted (erased, or expired): it waits only for the
        operator's finalizer, and reads as gone meanwhile."""
        if resource["metadata"].get("deletionTimestamp"):
            return None
        job = job_of(resource)
        outbox = (resource.get("status") or {}).get("webhooks")
        if outbox:
            self._delivery_notes[resource["metadata"]["name"]] = {"status": {"webhooks": outbox}}
        return job

    def _delivery_note(self, job_id: str) -> JSON | None:
        note = self._delivery_notes.get(resource_name(job_id))
        return note if note is not None else self.archived.resource(job_id)

    def _forget_delivery_note(self, name: str) -> None:
        self._delivery_notes.pop(name, None)

    async def start(self) -> None:
        """Fail rather than serve from empty caches: a pod that cannot reach the API server
        or S3 should crash-loop visibly, not answer 404 for every job."""
        loop = asyncio.get_running_loop()
        self.jobs.start(loop)
        self.keys.start(loop)
        self.monitor.start()
        try:
            await asyncio.to_thread(self.objects.prepare)
            timeout = self.settings.kubernetes.start_timeout_seconds
            for cache in (self.jobs, self.keys.cache):
                assert cache is not None
                if not await asyncio.to_thread(cache.wait_ready, timeout):
                    raise RuntimeError(
                        f"{cache.name}: cannot list and watch in namespace {self.namespace!r}"
                        f" within {timeout:.0f} s: {cache.last_error or 'no answer'}"
                    )
            await self.claimed.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await self.claimed.stop()
        self.results.close()
        self.monitor.stop()
        await asyncio.to_thread(self.jobs.stop)
        await asyncio.to_thread(self.keys.stop)

    def dependencies(self) -> dict[str, str]:
        report = self.monitor.report()
        caches = (self.jobs, self.keys.cache)
        unsynced = [c.name for c in caches if c is not None and not c.ready]
        if report[KUBERNETES] == "ok" and unsynced:
            report[KUBERNETES] = f"watch not in sync: {', '.join(unsynced)}"
        return report

    async def usage(self, tenant: str | None, first: date, last: date) -> list[UsageRecord]:
        """From the records the operator writes (:mod:`docjobs.operator.usage`)."""
        stored = StoredUsage(self.objects, self.namespace)
        return await self.monitor.call(
            OBJECT_STORE, lambda: list(stored.records(tenant, first, last))
        )

    async def quota_month(self, tenant: str, first: date, last: date) -> MonthUsage:
        """The records read at most every ``usage.quota_fresh_seconds``; the jobs from the
        watch cache (the tenant's group of it), which holds every job until it is archived,
        and its record written."""

        def live() -> list[Job]:
            jobs, _, _ = self.jobs.page(tenant, None, lambda job: True, sys.maxsize)
            return jobs

        return await self.recorded_months.usage(tenant, first, last, live)

    async def offload(self, call: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        key_check: bool = call == self.keys.authenticate
        if key_check:
            # Answered from the key Secret's watch cache: keys go on working while the API
            # server is down; only a key the cache does not know asks it.
            return await self.monitor.consult(KUBERNETES, call, *args, **kwargs)
        return await self.monitor.call(KUBERNETES, call, *args, **kwargs)

    # --- submission ------------------------------------------------------------------------

    async def submit(self, submission: Submission) -> tuple[Job, bool]:
        twins = self._twins(submission.tenant, submission.fingerprint)
        names = [resource_name(twin.spec.job_id) for twin in twins]
        if await self.claimed.ends.settled(names):  # a twin's end write was on its way
            twins = self._twins(submission.tenant, submission.fingerprint)
        if (twin := next((j for j in reversed(twins) if reusable(j)), None)) is not None:
            return twin, False  # the common duplicate: no upload, no API call
        # None, or only failed and cancelled twins: the document runs again, under the next
        # name. A lagging cache may not know that name is taken; then the one after it.
        sequence = sequence_of(twins[-1].spec.job_id) + 1 if twins else 1
        for _ in range(MAX_SUCCESSOR_TRIES):
            job_id = job_id_of_fingerprint(submission.fingerprint, sequence)
            job, created = await self._create(submission, job_id)
            if job is not None and (created or reusable(job)):
                return job, created
            sequence += 1
            if self.jobs.get(resource_name(job_id)) is None:
                # An archived job's name: its successors may be archived too, each found by
                # one GET (no upload); they take no try, since no cache lag explains them.
                job, sequence = await self.monitor.call(
                    OBJECT_STORE,
                    self.archived.successor,
                    submission.tenant,
                    functools.partial(job_id_of_fingerprint, submission.fingerprint),
                    sequence,
                )
                if job is not None:
                    return job, False
        raise RuntimeError(
            f"{MAX_SUCCESSOR_TRIES} DocumentJob names of this submission up to {sequence - 1}"
            " are all taken by failed or cancelled jobs the cache does not know yet"
        )

    def _twins(self, tenant: str, fingerprint: str) -> list[Job]:
        """The tenant's cached jobs of this submission, oldest (lowest sequence) first: an
        index lookup, so a tenant's thousands of jobs do not slow each submission down."""
        twins = self.jobs.indexed((tenant, fingerprint))
        return sorted(twins, key=lambda job: sequence_of(job.spec.job_id))

    async def _create(self, submission: Submission, job_id: str) -> tuple[Job | None, bool]:
        """The DocumentJob created for ``submission``, or the one that holds its name (None:
        an archived job past its TTL)."""
        name = resource_name(job_id)
        if (known := self._tenant_job(submission.tenant, name)) is not None:
            return known, False
        _, input_key = object_keys(submission.tenant, job_id)
        # A fresh key per upload: a racing duplicate must not overwrite the input of the job
        # that wins the create (with an Idempotency-Key the bytes may differ).
        input_key = f"{input_key}-{secrets.token_hex(4)}"
        # Both are needed: with either known to be down, answer now rather than upload.
        self.monitor.require(KUBERNETES, OBJECT_STORE)
        # A free name may still be an archived job's (its resource deleted): looked up
        # while the input uploads, so a new submission waits for no extra round trip.
        archived, _ = await asyncio.gather(
            self.monitor.call(OBJECT_STORE, self.archived.record, submission.tenant, job_id),
            self.monitor.call(OBJECT_STORE, store_input, self.objects, input_key, submission),
        )
        if archived is not None:
            await asyncio.to_thread(self._forget_upload, input_key)
            # Past its TTL (not yet swept) its id is still taken: the next name is tried.
            return (archived if alive(archived) else None), False
        body = to_resource(
            job_spec(submission, job_id, input_key, self.settings.jobs, self.objects.bucket),
            self.namespace,
        )
        # Claimed in the create itself: the operator never sees the job unclaimed. docTR
        # jobs are not: they need the GPU runner image (torch, weights) on the GPU pool.
        warm = submission.interactive and engine_of(submission.operation) is not Engine.DOCTR
        claim = await self.claimed.reserve(submission.tenant) if warm else None
        if claim is not None:
            body["metadata"]["annotations"] = claim.annotations()
        created: JSON | None = None
        try:
            created = await self.offload(
                self.client.create, documentjobs_path(self.namespace), body
            )
        except DependencyUnavailable:
            raise  # a create given up on may still land: its input stays
        except BaseException as exc:
            await asyncio.to_thread(self._forget_upload, input_key)
            if isinstance(exc, KubeError) and exc.conflict:  # AlreadyExists: a duplicate
                return await self._existing(submission.tenant, name), False
            raise
        finally:
            if claim is not None and created is None:
                self.claimed.unreserve(submission.tenant)
        job = self.jobs.observe(created)
        assert job is not None
        if claim is not None:
            self.claimed.run(created)
        return job, True

    def _forget_upload(self, key: str) -> None:
        try:
            self.objects.delete(key)
        except Exception:  # an orphan under the job's prefix, not a failed submission
            log.warning("cannot delete unused upload %s", key, exc_info=True)

    async def _existing(self, tenant: str, name: str) -> Job:
        """The job that won the create; one GET when the watch has not brought it yet."""
        if (job := self._tenant_job(tenant, name)) is not None:
            return job
        resource = await self.offload(self.client.get, documentjobs_path(self.namespace, name))
        job = self.jobs.observe(resource)
        if job is None or job.spec.tenant != tenant:
            raise RuntimeError(f"DocumentJob {name} exists but is not this submission's")
        return job

    # --- reads: the cache only -------------------------------------------------------------

    def _tenant_job(self, tenant: str, name: str) -> Job | None:
        job = self.jobs.get(name)
        return job if job is not None and job.spec.tenant == tenant else None

    async def get(self, tenant: str, job_id: str) -> Job | None:
        """From the cache; a name it does not hold may be an archived job's (one GET, or
        none for a job read lately). A claimed job whose end write is on its way is read
        once that write is over (see :mod:`.ending`)."""
        await self.claimed.ends.settled([resource_name(job_id)])
        if (job := self.jobs.get(resource_name(job_id))) is not None:
            return job if job.spec.tenant == tenant else None
        if (job := self.archived.recent(job_id)) is not None:
            return job if job.spec.tenant == tenant else None
        return await self.monitor.call(OBJECT_STORE, self.archived.find, tenant, job_id)

    async def list_jobs(self, query: JobQuery) -> JobPage:
        """The cache's jobs (active, recently finished) and the archived ones, merged."""
        await self.claimed.ends.settled(self.claimed.ends.of_tenant(query.tenant))
        jobs, total, more = self.jobs.page(query.tenant, query.after, query.matches, query.limit)
        archived, archived_total, archived_more = await self.monitor.call(
            OBJECT_STORE, self.archived.page, query
        )
        merged = sorted([*jobs, *archived], key=listing_position, reverse=True)
        more = more or archived_more or len(merged) > query.limit
        return JobPage(merged[: query.limit], total + archived_total, more)

    async def wait(self, job_id: str, timeout: float) -> Job:
        """A claimed job ends here as soon as this process knows its end, while the status
        write that records it is on its way (see :mod:`.ending`)."""
        name = resource_name(job_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: Job | None = None
        ends = self.claimed.ends
        with self.jobs.subscribe(name) as changed, ends.watch(name, changed):
            while True:
                changed.clear()
                known = self.jobs.get(name) or self.archived.recent(job_id)
                last = ends.decided(name) or known or last
                remaining = deadline - loop.time()
                if (last is not None and last.status.phase.terminal) or remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
        if last is None:
            raise LookupError(f"no job {job_id!r}")
        return last

    def watch(self, job_id: str) -> AbstractContextManager[asyncio.Event]:
        return self.jobs.subscribe(resource_name(job_id))

    def phase_counts(self) -> dict[Phase, int]:
        return dict(Counter(j.status.phase for j in self.jobs.values()))

    # --- batches: the record in the object store, decided ends from the operator -----------

    async def create_batch(self, batch: Batch) -> Batch:
        stored = StoredBatches(self.objects, self.namespace)
        return await self.monitor.call(OBJECT_STORE, stored.create, batch)

    async def seal_batch(self, batch: Batch, total: int) -> None:
        # The operator decides the batch's end: it sees the seal when the batch's next job
        # ends, or the touch below when every job had ended already; where no job is left
        # to touch (archived), its sweep of the seals index the seal writes.
        stored = StoredBatches(self.objects, self.namespace)
        await self.monitor.call(OBJECT_STORE, stored.seal, batch.tenant, batch.batch_id, total)
        members = [j for j in self.jobs.values() if j.spec.batch_id == batch.batch_id]
        if not members:
            return  # no job, or all archived already: the operator's sweep finds the seal
        newest = max(members, key=listing_position)
        patch = {"metadata": {"annotations": {ANNOTATION_BATCH_SEALED: str(total)}}}
        path = documentjobs_path(self.namespace, resource_name(newest.spec.job_id))
        with contextlib.suppress(KubeError):  # deleted meanwhile: it was ended and noted
            self.jobs.observe(await self.offload(self.client.merge_patch, path, patch))

    async def get_batch(self, tenant: str, batch_id: str) -> BatchState | None:
        stored = StoredBatches(self.objects, self.namespace)
        return await self.monitor.call(
            OBJECT_STORE, batch_state, stored, tenant, batch_id, self.jobs.values
        )

    async def completed_batches(
        self, tenant: str, limit: int, after: ListPosition | None
    ) -> list[Batch]:
        stored = StoredBatches(self.objects, self.namespace)
        return await self.monitor.call(OBJECT_STORE, stored.completed, tenant, limit, after)

    async def batch_deliveries(self, batch: Batch) -> list[DeliveryRecord]:
        # Kept by the operator in the batch's journal in the object store.
        stored = StoredBatches(self.objects, self.namespace)
        return await self.monitor.call(OBJECT_STORE, stored.deliveries, batch)

    def record_batch_replay(
        self, batch: Batch, target: str, attempt: DeliveryAttempt
    ) -> DeliveryRecord | None:
        stored = StoredBatches(self.objects, self.namespace)
        return stored.record_replay(batch, target, attempt)

    # --- writes ----------------------------------------------------------------------------

    async def cancel(self, tenant: str, job_id: str) -> Job | None:
        name = resource_name(job_id)
        job = await self.get(tenant, job_id)
        if job is None or job.status.phase.terminal:
            return job
        try:
            patched = await self.offload(
                self.client.merge_patch,
                documentjobs_path(self.namespace, name),
                {"spec": {"cancel": True}},
            )
        except KubeError as exc:
            if exc.not_found:  # deleted meanwhile
                return None
            raise
        return self.jobs.observe(patched)

    async def erase(self, job: Job) -> None:
        """The S3 prefix first (should S3 fail, the DocumentJob stays to erase again), then
        the DocumentJob: the operator keeps nothing else of it, and never creates one."""
        prefix, _ = object_keys(job.spec.tenant, job.spec.job_id)
        self.monitor.require(KUBERNETES, OBJECT_STORE)
        await self.monitor.call(OBJECT_STORE, self.objects.delete_prefix, prefix)
        await self.monitor.call(OBJECT_STORE, self.archived.forget, job)
        name = resource_name(job.spec.job_id)
        await self.offload(
            self.client.delete, documentjobs_path(self.namespace, name), missing_ok=True
        )
        self.jobs.forget(name)
        if job.status.phase.terminal:
            # The operator may have been archiving it meanwhile: a record it wrote before
            # the delete goes now (one written after, it withdraws itself).
            await self.monitor.call(OBJECT_STORE, self.archived.forget, job)

    # --- results ---------------------------------------------------------------------------

    async def open_result(self, job: Job, *, waited: bool = False) -> Iterator[bytes]:
        """The result's chunks; for the sync request that waited on a claimed job, opened
        while its last status write was on its way (see :mod:`.opened`), without another
        round trip. Other readers never take it: they meet the object store as it is now."""
        assert job.status.result is not None
        if waited and (opened := await self.results.take(job.status.result)) is not None:
            return opened
        return await self.monitor.call(OBJECT_STORE, opened_result, self.objects, job)

    async def read_json_result(self, job: Job, limit: int) -> object:
        return await self.monitor.call(OBJECT_STORE, json_result, self.objects, job, limit)

    async def event_data(self, job: Job) -> dict[str, Any]:
        """As the operator sends it (:class:`docjobs.kube.outbox.Outbox`): without the result."""
        return job_view(job)
