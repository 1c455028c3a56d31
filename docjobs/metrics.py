"""Prometheus metrics of jobs; labels never carry job ids, nor tenants but in the per-tenant
usage counters an installation turns on (``DOCJOBS_USAGE__TENANT_METRICS``): bounded
cardinality."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from docjobs.domain.models import Job, Phase

JOBS_FINISHED = Counter(
    "docjobs_jobs_finished_total", "Jobs that reached a terminal phase.", ["operation", "phase"]
)
JOB_DURATION = Histogram(
    "docjobs_job_duration_seconds",
    "Time from submission to a terminal phase.",
    ["operation", "phase"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
)

JOBS_FAILED = Counter(
    "docjobs_jobs_failed_total",
    "Failed jobs by the reason of their last error (the runner's and the API's fixed "
    "vocabulary, as `kubectl get dj` shows it).",
    ["operation", "reason"],
)

_USAGE_LABELS = ["operation", "tier", "status"]
USAGE_JOBS = Counter(
    "docjobs_usage_jobs_total", "Finished jobs, under the tier each ran on.", _USAGE_LABELS
)
USAGE_PAGES = Counter(
    "docjobs_usage_pages_total",
    "Pages finished jobs read (or, converting, made), by the tier that read them.",
    _USAGE_LABELS,
)
TENANT_USAGE_JOBS = Counter(
    "docjobs_tenant_usage_jobs_total",
    "Finished jobs per tenant (only with DOCJOBS_USAGE__TENANT_METRICS).",
    ["tenant", *_USAGE_LABELS],
)
TENANT_USAGE_PAGES = Counter(
    "docjobs_tenant_usage_pages_total",
    "Pages per tenant, by the tier that read them (only with DOCJOBS_USAGE__TENANT_METRICS).",
    ["tenant", *_USAGE_LABELS],
)


def count_usage(
    operation: str, tier: str, status: str, pages: Mapping[str, int], tenant: str | None
) -> None:
    """One finished job's usage; per tenant too when ``tenant`` is given."""
    USAGE_JOBS.labels(operation, tier, status).inc()
    if tenant is not None:
        TENANT_USAGE_JOBS.labels(tenant, operation, tier, status).inc()
    for read_by, count in pages.items():
        USAGE_PAGES.labels(operation, read_by, status).inc(count)
        if tenant is not None:
            TENANT_USAGE_PAGES.labels(tenant, operation, read_by, status).inc(count)


def record_finished(job: Job) -> None:
    status, spec = job.status, job.spec
    labels = (spec.operation.kind, status.phase.value)
    JOBS_FINISHED.labels(*labels).inc()
    if status.phase is Phase.FAILED:
        reason = status.error.reason if status.error is not None else "Unknown"
        JOBS_FAILED.labels(spec.operation.kind, reason).inc()
    if status.completed_at is not None:
        elapsed = (status.completed_at - spec.created_at).total_seconds()
        JOB_DURATION.labels(*labels).observe(max(elapsed, 0.0))


class JobGauges(Collector):
    """Jobs by phase and queue depth, read from the backend at scrape time."""

    def __init__(self, counts: Callable[[], dict[Phase, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self.counts()
        by_phase = GaugeMetricFamily("docjobs_jobs", "Jobs by phase.", labels=["phase"])
        for phase in Phase:
            by_phase.add_metric([phase.value], counts.get(phase, 0))
        yield by_phase
        queued = counts.get(Phase.PENDING, 0) + counts.get(Phase.RETRYING, 0)
        yield GaugeMetricFamily("docjobs_queue_depth", "Jobs waiting for a runner.", value=queued)


_registered: JobGauges | None = None


def register_job_gauges(counts: Callable[[], dict[Phase, int]]) -> None:
    """Point the gauges at the current backend (one per process; tests build several apps)."""
    global _registered
    if _registered is None:
        _registered = JobGauges(counts)
        REGISTRY.register(_registered)
    _registered.counts = counts
