"""Operator metrics. Labels are bounded (verbs, codes, engines, outcomes): never job names,
namespaces or tenants, which would make one time series per job."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
