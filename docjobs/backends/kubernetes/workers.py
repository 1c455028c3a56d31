"""Warm worker pods: ``docjobs workers`` claims small DocumentJobs and runs them on engines
that stay loaded, so a one-page document costs no pod start and no engine import.

Deployment (what the chart's Deployment needs):

- Command: ``docjobs workers`` (``--namespace`` overrides the namespace; ``--port`` the
  probe port). Image: the shared docjobs image (the API's) for the CPU engines; the GPU
  image for docTR (``DOCJOBS_WORKERS__ENGINES='["doctr"]'``). A writable ``/tmp``
  (emptyDir): the warm runner processes keep their scratch under
  ``$TMPDIR/docjobs-attempts``.
- Port ``DOCJOBS_WORKERS__PORT`` (8080; 0: none), plain HTTP: ``/healthz`` (200 while the
  process starts and claims; 503 once its claim loop died or stalled: liveness),
  ``/readyz`` (200 once the DocumentJob watch cache is in sync; readiness), ``/metrics``
  (Prometheus:
  ``docjobs_workers_claims_total{outcome}`` (claimed, conflict, failed),
  ``docjobs_workers_busy`` and ``docjobs_workers_size`` (gauges), and for the jobs this
  pod ended ``docjobs_jobs_finished_total`` and ``docjobs_job_duration_seconds``).
- Environment: ``POD_NAMESPACE`` (downward API) or ``DOCJOBS_KUBERNETES__NAMESPACE``: the
  DocumentJobs' namespace; ``DOCJOBS_WORKERS__CONCURRENCY`` (2): warm runner processes per
  pod (size the CPU request to it); ``DOCJOBS_WORKERS__DRAIN_SECONDS`` (20): on SIGTERM the
  pod stops claiming, lets running jobs finish this long, then hands the rest back to the
  operator (set ``terminationGracePeriodSeconds`` above it); the S3 settings the API has
  (``DOCJOBS_S3__ENDPOINT``, ``_BUCKET``, ``_ACCESS_KEY``, ``_SECRET_KEY``, ``_SECURE``,
  ``_REGION``): the workers read inputs and write results and outcomes directly;
  ``DOCJOBS_LLM__API_KEY`` (and ``_BASE_URL``) for vision OCR and ``llm`` templates.
  These must equal the operator's: ``DOCJOBS_OPERATOR__SHARD_THRESHOLD_PAGES`` and
  ``DOCJOBS_RUNNER__PART_PAGES`` (which jobs are sharded, so never claimed),
  ``DOCJOBS_JOBS__MAX_RUNNING_PER_TENANT``, ``DOCJOBS_KUBERNETES__CLAIM_SECONDS``, and the
  operator's ``DOCJOBS_OPERATOR__CLAIMED_ENGINES`` must hold this pod's engines; the
  runner's ceilings apply per attempt (``DOCJOBS_RUNNER__MEMORY_LIMIT_MB``,
  ``_MAX_JOBS_PER_WORKER``, ``DOCJOBS_CEILINGS__*``). With workers deployed, set the
  operator's ``DOCJOBS_OPERATOR__CLAIM_GRACE_SECONDS`` (e.g. 5): how long it leaves a
  claimable job to them before it starts a runner Job.
- RBAC (a Role in the namespace; the pod needs its ServiceAccount token):
  ``documentjobs`` (``docjobs.io``): get, list, watch, patch; ``documentjobs/status``:
  get, patch. No Secrets, Jobs or pods. Network: the API server, S3 (and Claude).

How it works: a watch cache of the namespace's DocumentJobs keeps the jobs a worker may
claim: pending or retrying (once their backoff passed), not claimed, not cancelled, of one
of its engines (``DOCJOBS_WORKERS__ENGINES``) and not sharded. A pod holds up to two jobs
per warm worker: the one it runs and the next, claimed and started ahead so that a worker
that frees up waits for no round trip to the API server. A pod that claims docTR holds two
batches per worker (``DOCJOBS_DOCTR__BATCH_DOCUMENTS`` each): the one its worker reads,
pages of all its documents through one predictor, and the next, gathering meanwhile.
Whenever it holds fewer, it picks jobs in fair-share order within the tenant cap and
claims each with a merge patch of the claim annotation on condition of the
``resourceVersion`` it read: a conflict means the operator or another worker moved first,
and the job is skipped. A claimed job then runs exactly as an API pod's sync claim does
(:mod:`.held`): status through the step, the claim renewed while it runs, released on a
non-terminal end. A pod that dies leaves claims that lapse, and the operator takes those
jobs over; the outcome a worker stored still wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from prometheus_client import Counter as MetricCounter
from prometheus_client import Gauge

from docjobs.backends.dependencies import KUBERNETES, DependencyMonitor
from docjobs.backends.workers import scratch
from docjobs.backends.workers.batcher import DocumentBatcher
from docjobs.backends.workers.pool import WorkerPool
from docjobs.config import Settings
from docjobs.domain.clock import utcnow
from docjobs.domain.engines import CPU_ENGINES
from docjobs.domain.fairshare import next_jobs
from docjobs.domain.models import Engine, Job, Phase
from docjobs.kube.cache import WatchCache
from docjobs.kube.claimable import claimable, waiting_since
from docjobs.kube.claims import Claim, claim_of
from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import job_of, resource_name
from docjobs.storage.factory import store_environment

from .claimed import SCRATCH_FOLDER
from .held import HeldJobs
from .probes import serve_probes

log = logging.getLogger("docjobs.workers")

CLAIMS = MetricCounter(
    "docjobs_workers_claims_total",
    "Claims this pod tried, by outcome: claimed, conflict (the operator or another worker "
    "moved first), failed (the API server did not take it).",
    ["outcome"],
)
BUSY = Gauge("docjobs_workers_busy", "Claimed jobs this pod runs now.")
SIZE = Gauge("docjobs_workers_size", "Warm runner processes of this pod.")
IDLE_LOOK_SECONDS = 1.0
"""Seconds between two looks for claimable jobs when no change wakes the claim loop."""
CLAIMED_AHEAD = 1
"""Jobs a pod claims per warm worker beyond the one it runs: their claims and start writes
happen while the workers are busy, so a worker that frees up finds its next job started."""
STALL_SECONDS = 60.0
"""Seconds without a turn of the claim loop after which ``/healthz`` answers 503."""


@dataclass(frozen=True)
class Waiting:
    """A DocumentJob a worker may claim once ``ready_at`` has passed."""

    job: Job
    version: str
    """The ``resourceVersion`` read: the claim is conditional on it."""
    since: datetime
    """Since when it has waited (its queue order)."""
    ready_at: datetime
    """Its backoff's end, or its lapsed claim's; any time before now: at once."""


def waiting_of(
    resource: JSON,
    job: Job,
    threshold: int,
    part_pages: int,
    engines: Collection[Engine] = CPU_ENGINES,
) -> Waiting | None:
    """``job`` as a job a worker of ``engines`` may claim (now or once its backoff or claim
    ends); None when it never may as it stands (running, ended, cancelled, another engine,
    sharded)."""
    status = job.status
    if status.phase not in (Phase.PENDING, Phase.RETRYING):
        return None
    if not claimable(job, threshold, part_pages, engines):
        return None
    since = waiting_since(resource, job)
    ready_at = since
    if (claim := claim_of(resource)) is not None:  # held by someone: claimable once lapsed
        ready_at = max(ready_at, claim.expires_at)
    version = str(resource["metadata"].get("resourceVersion", ""))
    return Waiting(job, version, since, ready_at)


class ClaimingWorkers:
    """``docjobs workers``: claims the DocumentJobs its warm workers may run, and runs them."""

    def __init__(
        self, settings: Settings, client: KubeClient, monitor: DependencyMonitor | None = None
    ) -> None:
        """``client`` comes from :mod:`docjobs.bootstrap`; ``monitor``: by default one that
        checks the API server's ``/readyz``."""
        kube = settings.kubernetes
        self.settings = settings
        self.client = client
        self.namespace = kube.namespace
        self.size = settings.workers.concurrency
        self.cap = settings.jobs.max_running_per_tenant
        self.threshold = settings.operator.shard_threshold_pages
        self.part_pages = settings.runner.part_pages
        self.engines = tuple(settings.workers.engines)
        self.holder = f"{socket.gethostname()}/{os.getpid()}"
        self.jobs: WatchCache[Job] = WatchCache(
            client,
            documentjobs_path(self.namespace),
            self._parse,
            watch_timeout_seconds=kube.watch_timeout_seconds,
            name="documentjobs-cache",
            dropped=self._dropped,
        )
        self.monitor = monitor or DependencyMonitor(
            {KUBERNETES: lambda: client.get_text("/readyz")},
            threads=settings.server.dependency_threads,
            stall_seconds=settings.server.stall_seconds,
        )
        env = store_environment(settings, {**os.environ, "DOCJOBS_BACKEND": "kubernetes"})
        self.scratch_root = Path(tempfile.gettempdir()) / SCRATCH_FOLDER
        self.pool = WorkerPool(
            self.size, settings.runner.max_jobs_per_worker, env, scratch_root=self.scratch_root
        )
        self.batcher: DocumentBatcher | None = None
        self.slots = self.size * (1 + CLAIMED_AHEAD)
        """Jobs this pod holds at most: each worker's, and as many claimed ahead."""
        if Engine.DOCTR in self.engines:
            # A worker reads a batch of docTR documents at once; the next batch gathers
            # while it runs.
            doctr = settings.doctr
            self.batcher = DocumentBatcher(
                self.pool, doctr.batch_documents, doctr.batch_linger_ms / 1000
            )
            self.slots = self.size * doctr.batch_documents * (1 + CLAIMED_AHEAD)
        self.held = HeldJobs(
            client,
            self.namespace,
            self.jobs,
            self.monitor,
            self.pool,
            self.new_claim,
            self.size,
            batcher=self.batcher,
        )
        self._lock = threading.Lock()
        self._waiting: dict[str, Waiting] = {}
        """Jobs a worker may claim, by name, as the watch last showed them."""
        self._running: dict[str, str] = {}
        """Jobs that run now (Processing, or under a live claim), by name: their tenant."""
        self._turns: dict[str, int] = {}
        self._turn = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._claiming: asyncio.Task[None] | None = None
        self._beat = time.monotonic()

    def new_claim(self) -> Claim:
        """This process's claim on a job, from now."""
        return Claim(self.holder, utcnow(), self.settings.kubernetes.claim_seconds)

    # --- the watch cache's view (on its thread) --------------------------------------------

    def _parse(self, resource: JSON) -> Job | None:
        name = resource["metadata"]["name"]
        if resource["metadata"].get("deletionTimestamp"):
            self._dropped(name)
            return None
        job = job_of(resource)
        waiting = waiting_of(resource, job, self.threshold, self.part_pages, self.engines)
        claim = claim_of(resource)
        running = job.status.phase is Phase.PROCESSING or (
            claim is not None and claim.held(utcnow())
        )
        with self._lock:
            if waiting is None:
                self._waiting.pop(name, None)
            else:
                self._waiting[name] = waiting
            if running:
                self._running[name] = job.spec.tenant
            else:
                self._running.pop(name, None)
        if waiting is not None:
            self._wake_up()
        return job

    def _dropped(self, name: str) -> None:
        with self._lock:
            self._waiting.pop(name, None)
            self._running.pop(name, None)

    def _wake_up(self) -> None:
        """Wakes the claim loop, from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    # --- the claim loop --------------------------------------------------------------------

    def waiting(self) -> list[Waiting]:
        """The jobs a worker may claim, now or once their backoff or claim ends."""
        with self._lock:
            return list(self._waiting.values())

    def choose(self, now: datetime) -> list[Waiting]:
        """The waiting jobs the free workers take next: tenants in fair-share order
        (:func:`~docjobs.domain.fairshare.next_jobs`), none past its tenant's cap."""
        free = self.slots - len(self.held)
        if free <= 0:
            return []
        with self._lock:
            ready = [
                w for n, w in self._waiting.items() if w.ready_at <= now and n not in self.held
            ]
            running = Counter(self._running.values())
        ready.sort(key=lambda w: (w.since, w.job.spec.job_id))
        by_id = {w.job.spec.job_id: w for w in ready}
        waited = {w.job.spec.job_id for w in ready if w.job.spec.interactive}
        chosen = next_jobs(
            [w.job for w in ready], running, free, self.cap, waited, turns=self._turns
        )
        for job in chosen:
            self._turn += 1
            self._turns[job.spec.tenant] = self._turn
        return [by_id[job.spec.job_id] for job in chosen]

    async def claim_next(self) -> int:
        """Claims what the free workers take next and starts running it; how many."""
        claimed = 0
        for waiting in self.choose(utcnow()):
            if await self.take(waiting):
                claimed += 1
        return claimed

    async def take(self, waiting: Waiting) -> bool:
        """Claims ``waiting`` on condition of the version read, and runs it; False when
        someone else moved first (or the API server did not take the claim)."""
        name = resource_name(waiting.job.spec.job_id)
        body = {
            "metadata": {
                "resourceVersion": waiting.version,
                "annotations": self.new_claim().annotations(),
            }
        }
        path = documentjobs_path(self.namespace, name)
        try:
            claimed = await self.monitor.call(KUBERNETES, self.client.merge_patch, path, body)
        except KubeError as exc:
            if not (exc.conflict or exc.not_found):
                CLAIMS.labels("failed").inc()
                log.warning("%s: cannot claim: %s", name, exc)
            else:
                CLAIMS.labels("conflict").inc()
            self._forget_version(name, waiting.version)
            return False
        except Exception as exc:  # unreachable, or refused while known to be down
            CLAIMS.labels("failed").inc()
            log.warning("%s: cannot claim: %s", name, exc)
            return False
        CLAIMS.labels("claimed").inc()
        self.jobs.observe(claimed)
        self.held.run(claimed, done=self._ran)
        BUSY.set(len(self.held))
        return True

    def _forget_version(self, name: str, version: str) -> None:
        """Someone else wrote the job since ``version``: the watch brings the new one, and
        with it the job again if it is still claimable."""
        with self._lock:
            known = self._waiting.get(name)
            if known is not None and known.version == version:
                del self._waiting[name]

    def _ran(self) -> None:
        BUSY.set(len(self.held))
        self._wake.set()

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._beat = time.monotonic()
            self._wake.clear()
            await self.claim_next()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_wait())

    def _idle_wait(self) -> float:
        """Seconds until a waiting job's backoff or claim ends, at most a second."""
        now = utcnow()
        with self._lock:
            later = [w.ready_at for w in self._waiting.values() if w.ready_at > now]
        if not later:
            return IDLE_LOOK_SECONDS
        return min(max((min(later) - now).total_seconds(), 0.01), IDLE_LOOK_SECONDS)

    # --- the process -----------------------------------------------------------------------

    async def start(self) -> None:
        """Warm the workers, list and watch, then claim; fails if the cache cannot sync in
        time (a pod that cannot reach the API server should crash-loop visibly)."""
        await asyncio.to_thread(scratch.sweep, self.scratch_root, shared=True)
        await self.pool.warm_up()
        SIZE.set(self.size)
        await self.watch()
        self._claiming = asyncio.create_task(self._claim_loop(), name="claim-loop")

    async def watch(self) -> None:
        """List and watch the namespace's DocumentJobs, until in sync."""
        self._loop = asyncio.get_running_loop()
        self.jobs.start(self._loop)
        self.monitor.start()
        timeout = self.settings.kubernetes.start_timeout_seconds
        if not await asyncio.to_thread(self.jobs.wait_ready, timeout):
            await self.stop()
            raise RuntimeError(
                f"{self.jobs.name}: cannot list and watch in namespace {self.namespace!r}"
                f" within {timeout:.0f} s: {self.jobs.last_error or 'no answer'}"
            )

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Claims nothing more, lets running jobs finish for ``drain_seconds``, then hands
        the rest back to the operator (their claims released)."""
        self._stopping = True
        self._wake.set()
        if self._claiming is not None:
            await asyncio.gather(self._claiming, return_exceptions=True)
        await self.held.drain(drain_seconds)
        await self.held.stop()
        self.monitor.stop()
        await asyncio.to_thread(self.jobs.stop)

    def healthy(self) -> bool:
        """Whether the claim loop turns (it wakes at least every second); true while the
        pod starts: warming up and syncing the cache are bounded by the start timeout."""
        task = self._claiming
        if task is None:
            return True
        return not task.done() and time.monotonic() - self._beat < STALL_SECONDS

    def ready(self) -> bool:
        return self.jobs.ready and not self._stopping

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, with the probes and metrics on
        ``settings.workers.port``."""
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopped.set)
        probes = serve_probes(self.settings.workers.port, self.healthy, self.ready)
        await self.start()
        log.info(
            "docjobs workers claiming in namespace %s with %d warm workers (probes :%s)",
            self.namespace,
            self.size,
            self.settings.workers.port or "off",
        )
        try:
            assert self._claiming is not None
            ended = asyncio.create_task(stopped.wait())
            await asyncio.wait({ended, self._claiming}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            if self._claiming.done() and (error := self._claiming.exception()) is not None:
                raise error
        finally:
            await self.stop(self.settings.workers.drain_seconds)
            if probes is not None:
                probes.shutdown()
