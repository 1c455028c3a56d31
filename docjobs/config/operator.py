"""The operator's settings section, read from ``DOCJOBS_OPERATOR__*`` environment variables.

Nested values use ``__`` again (``DOCJOBS_OPERATOR__UNSCHEDULABLE_SECONDS=600``); maps are
given as JSON (``DOCJOBS_OPERATOR__ENGINES='{"doctr": {...}}'`` replaces the whole map).
The operator's S3, Kubernetes and webhook settings are the shared sections of the same root.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from pydantic import BaseModel, Field

from docjobs.domain.engines import CPU_ENGINES, PLACEMENTS
from docjobs.domain.models import Engine


def _version() -> str:
    try:
        return version("docjobs")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "latest"


class RunnerPool(BaseModel):
    """Where runner pods of one kind of node go."""

    node_selector: dict[str, str]
    """Labels a node of this pool carries (``docjobs.io/pool: cpu`` by default)."""
    tolerations: list[dict[str, Any]] = []
    """Taints of this pool's nodes that its pods tolerate (the GPU pool's ``nvidia.com/gpu``)."""
    extra_limits: dict[str, str] = {}
    """Extended resources every pod of this pool asks for (a GPU each on the GPU pool)."""
    image: Literal["cpu", "gpu"] = "cpu"
    """Which runner image: the GPU image carries CUDA and docTR, the CPU image does not."""
    runtime_class_name: str | None = None
    """RuntimeClass of this pool's pods (``nvidia`` on many GPU clusters, ``gvisor`` for a
    sandbox); ``None``: the cluster's default runtime."""
    priority_class_name: str | None = None
    """PriorityClass of this pool's pods; ``None``: the cluster's default priority."""


class RunnerPodProfile(BaseModel):
    """Resources and limits of one engine's runner pods."""

    pool: str = "cpu"
    """Name of the pool (a key of ``pools``) the engine's pods run in."""
    requests: dict[str, str]
    """Scheduler requests; the CPU request also bounds how many runners share a node."""
    limits: dict[str, str]
    """Memory limits only: a CPU limit throttles a burst-y engine without protecting anyone."""
    active_deadline_seconds: int = Field(gt=0)
    """Upper bound of one attempt (Job ``activeDeadlineSeconds``); a job's own
    ``timeoutSeconds`` may shorten it, never extend it."""


def _default_pools() -> dict[str, RunnerPool]:
    return {
        "cpu": RunnerPool(node_selector={"docjobs.io/pool": "cpu"}),
        "gpu": RunnerPool(
            node_selector={"docjobs.io/pool": "gpu"},
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            extra_limits={"nvidia.com/gpu": "1"},
            image="gpu",
        ),
    }


def _default_engines() -> dict[Engine, RunnerPodProfile]:
    def profile(engine: Engine, cpu: str, memory: str, limit: str) -> RunnerPodProfile:
        # Pool and attempt deadline are the engine's placement, which every part reads.
        placement = PLACEMENTS[engine]
        return RunnerPodProfile(
            pool=placement.pool,
            requests={"cpu": cpu, "memory": memory},
            limits={"memory": limit},
            active_deadline_seconds=placement.attempt_seconds,
        )

    return {
        Engine.CONVERT: profile(Engine.CONVERT, "250m", "256Mi", "1Gi"),
        Engine.TESSERACT: profile(Engine.TESSERACT, "500m", "512Mi", "2Gi"),
        Engine.DOCTR: profile(Engine.DOCTR, "1", "2Gi", "8Gi"),
        Engine.VISION: profile(Engine.VISION, "100m", "256Mi", "512Mi"),
        Engine.EXTRACT: profile(Engine.EXTRACT, "500m", "512Mi", "2Gi"),
        Engine.OFFICE: profile(Engine.OFFICE, "500m", "512Mi", "2Gi"),
    }


class OperatorSettings(BaseModel):
    """The operator's section, ``settings.operator``; only the operator process reads it."""

    namespace: str | None = None
    """Namespace to watch; ``None``: all namespaces (the CLI's ``--namespace`` wins)."""
    runner_image: str = Field(default_factory=lambda: f"docjobs/runner:{_version()}")
    """Image of CPU runners (convert, Tesseract, vision, extract)."""
    runner_gpu_image: str = Field(default_factory=lambda: f"docjobs/runner-gpu:{_version()}")
    """Image of GPU runners (docTR): CUDA and torch make it several GB, so it is separate."""
    image_pull_policy: str = "IfNotPresent"
    """Pull policy of runner containers; ``IfNotPresent`` suits versioned image tags."""
    pools: dict[str, RunnerPool] = Field(default_factory=_default_pools)
    """Node pools by name: ``cpu``, and ``gpu`` for docTR."""
    engines: dict[Engine, RunnerPodProfile] = Field(default_factory=_default_engines)
    """Pod resources, pool and deadline of each engine's runners."""
    shard_threshold_pages: int = Field(default=40, ge=0)
    """Pages; 40. An OCR document selecting more pages runs as one Indexed Job whose pods
    (shards) each read one part of it (``DOCJOBS_RUNNER__PART_PAGES`` pages, the setting
    embedded mode splits by too); 0 runs every document in one pod."""
    shard_parallelism: int = Field(default=4, ge=1)
    """Pods; 4. Shards of one document running at once."""
    shard_retries: int = Field(default=2, ge=0)
    """Retries of one failed shard (``backoffLimitPerIndex``); the others keep their work."""
    job_ttl_seconds: int = 600
    """Seconds; 10 min. Finished runner Jobs (and their pods, with the termination message)
    are kept this long for ``kubectl`` inspection; the outcome is in the DocumentJob already."""
    termination_grace_seconds: int = 10
    """Seconds; 10. A runner is a one-shot process with nothing to flush: cancel fast."""
    url_margin_seconds: int = Field(default=300, ge=60)
    """Seconds; 5 min. Runner pods hold no store credentials, only presigned URLs of their
    own attempt's objects; those stop working this long after the attempt's deadline (time
    for the Job to be created and for clocks to differ), so a leaked URL soon is useless."""
    llm_secret: str = ""
    """Secret in the job's namespace whose ``apiKey`` runner pods get as
    ``DOCJOBS_LLM__API_KEY`` (by reference, never copied into the Job); empty: none."""
    runner_service_account: str = ""
    """ServiceAccount of runner pods (they get no token either way); empty: the namespace's
    ``default``."""
    runner_env: dict[str, str] = {}
    """Extra plain environment for runner pods (e.g. ``DOCJOBS_LLM__BASE_URL``)."""
    unschedulable_seconds: float = 300.0
    """Seconds; 5 min. A runner pod the scheduler cannot place for this long fails the
    attempt with the scheduler's message (a GPU pool scaled to zero may need a few minutes)."""
    claimed_engines: list[Engine] = Field(default_factory=lambda: list(CPU_ENGINES))
    """Engines; ``["convert","tesseract","vision","extract"]``. The engines whose jobs some
    worker pod claims (every pod's ``DOCJOBS_WORKERS__ENGINES`` together): the claim grace
    applies to their jobs only, and any other job gets a runner Job at once."""
    claim_grace_seconds: float = Field(default=0.0, ge=0)
    """Seconds; 0 (off). How long a runnable DocumentJob that warm worker pods may claim
    (``docjobs workers``: of ``claimed_engines``, not sharded) is left to them before the
    operator starts a runner Job for it, counted from the later of its creation (for a
    retry, the end of its backoff) and the last time a worker pod took a waiting job of its
    pool: workers that keep taking jobs keep a backlog of any depth. Set it (a few seconds)
    where worker pods run; workers that are gone or stuck then cost a job at most this
    long."""
    pending_grace_seconds: float = 30.0
    """Seconds; 30. A DocumentJob still Pending this long after it was last seen is
    reconciled again, a safety net behind the create handler."""
    resync_seconds: float = 60.0
    """Seconds; 60. How often a Processing DocumentJob's Job (and the outcome its runner
    may have stored) is checked without an event: watch events can be missed."""
    recheck_max_seconds: float = 8.0
    """Seconds; 8. A step that failed (object store or API server unreachable) is tried
    again after 1, 2, 4 ... seconds up to this, so it resolves soon after the outage."""
    progress_seconds: float = Field(default=2.0, gt=0)
    """Seconds; 2. How often the progress a running single-pod attempt stores (pages read)
    is read into its DocumentJob's status; sharded attempts show theirs from their Job.
    Rounded up to ``tick_seconds``."""
    tick_seconds: float = 1.0
    """Seconds; 1. Granularity of retries and expiry (backoffs are seconds long)."""
    queue_metrics_by_tenant: bool = True
    """Label the queue-depth gauges (jobs waiting and running) with the tenant as well as the
    pool: a few series per tenant that has had a job since the operator started. Turn off
    with thousands of tenants; the gauges then sum over tenants (an empty ``tenant``)."""
    workers: int = 8
    """Threads for handlers and due work; each mostly waits on the API server."""
    event_workers: int = Field(default=256, ge=0)
    """DocumentJobs (and likewise runner Jobs, runner pods) whose watch events are handled at
    once; the others wait as their raw events until one is done. Each object in hand holds
    kopf's whole processing state (tens of KB) while it waits for the ``workers`` threads,
    so without a bound thousands of jobs ending, archived or deleted in the same second
    raise the operator's memory severalfold, and Python keeps that peak. 0: no bound."""
    watch_server_timeout: int = 300
    """Seconds; 5 min. The API server ends each watch after this, so a silently broken
    connection is noticed; kopf resumes from the last resourceVersion."""
    watch_client_timeout: int = 330
    """Seconds; a bit above the server's timeout, for a server that never answers."""
    watch_connect_timeout: int = 30
    """Seconds; 30. Connecting to the API server."""
    archive_after_seconds: float = Field(default=300.0, ge=0)
    """Seconds; 5 min. A finished DocumentJob whose webhook deliveries are settled is moved
    this long after its end to the object store (its record, read by the API as before until
    its TTL) and deleted from the cluster, so finished jobs cost neither etcd nor the watch
    caches; ``kubectl get dj`` shows active and recently finished jobs. 0: never archived,
    kept in the cluster until the TTL."""
    conflict_retries: int = 8
    """Status writes retried on a resourceVersion conflict before giving up to the next event."""
