"""Operator metrics. Labels are bounded (verbs, codes, engines, pools, outcomes): never job
names or namespaces, which would make one time series per job. The queue-depth gauges carry
the tenant too (``queue_metrics_by_tenant``): a handful of series per tenant."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from docjobs.domain.clock import utcnow

from .queue_depth import Depth, QueueDepth

API_REQUESTS = Counter(
    "docjobs_operator_api_requests_total",
    "Requests the operator's handlers made to the API server (kopf's watches excluded).",
    ["verb", "code"],
)
EVENTS = Counter(
    "docjobs_operator_events_total",
    "Watch events handled, by resource.",
    ["resource"],
)
RECONCILES = Counter(
    "docjobs_operator_reconciles_total",
    "Decisions taken about a DocumentJob, by outcome: written (status changed), unchanged, "
    "conflict (resourceVersion moved; taken again on fresh state), gone (deleted meanwhile).",
    ["outcome"],
)
RUNNER_JOBS = Counter(
    "docjobs_operator_runner_jobs_total",
    "Runner Jobs created (adopted: it existed already, e.g. after a restart).",
    ["engine", "result"],
)
TIME_TO_JOB = Histogram(
    "docjobs_operator_time_to_runner_job_seconds",
    "From a DocumentJob's creation to its first runner Job's creation.",
    ["engine"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
ATTEMPT_SECONDS = Histogram(
    "docjobs_operator_attempt_seconds",
    "Runner Job creation to its end as the operator saw it, by how it ended.",
    ["engine", "outcome"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800),
)


class QueueGauges(Collector):
    """The queue depth of the operator's controller, read at scrape time, so the age of the
    oldest waiting job is as of the scrape."""

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self._queue: weakref.ref[QueueDepth] | None = None
        self._clock = clock

    def follow(self, queue: QueueDepth) -> None:
        """Report ``queue`` from now on (the controller of this process; a test's latest)."""
        self._queue = weakref.ref(queue)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from _families(Depth())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queue = self._queue() if self._queue is not None else None
        yield from _families(queue.depth(self._clock()) if queue is not None else Depth())


def _families(depth: Depth) -> Iterator[GaugeMetricFamily]:
    waiting = GaugeMetricFamily(
        "docjobs_operator_jobs_waiting",
        "DocumentJobs waiting to run, by the pool their engine runs in, tenant and phase: "
        "pending (not started, or held by the tenant's cap) or retrying (its backoff ended "
        "or not).",
        labels=["pool", "tenant", "phase"],
    )
    for (pool, tenant, phase), count in depth.waiting.items():
        waiting.add_metric([pool, tenant, phase], count)
    running = GaugeMetricFamily(
        "docjobs_operator_jobs_running",
        "DocumentJobs running (Processing, or claimed by a warm worker), by pool and tenant.",
        labels=["pool", "tenant"],
    )
    for (pool, tenant), count in depth.running.items():
        running.add_metric([pool, tenant], count)
    oldest = GaugeMetricFamily(
        "docjobs_operator_oldest_waiting_seconds",
        "Seconds the longest-waiting DocumentJob of a pool has waited: a pending job since "
        "its creation, a retrying one since its backoff ended; 0 when none waits.",
        labels=["pool"],
    )
    for pool, seconds in depth.oldest.items():
        oldest.add_metric([pool], seconds)
    claimable = GaugeMetricFamily(
        "docjobs_operator_jobs_claimable",
        "Waiting DocumentJobs a worker pod may claim now (no GPU, no shards, due), by pool: "
        "what the workers' autoscaler scales on.",
        labels=["pool"],
    )
    for pool, count in depth.claimable.items():
        claimable.add_metric([pool], count)
    return iter((waiting, running, oldest, claimable))


QUEUE = QueueGauges()
REGISTRY.register(QUEUE)
