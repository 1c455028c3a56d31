"""Prometheus metrics of jobs; labels never carry job ids or tenants (bounded cardinality)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

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


def record_finished(job: Job) -> None:
    status, spec = job.status, job.spec
    labels = (spec.operation.kind, status.phase.value)
    JOBS_FINISHED.labels(*labels).inc()
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
