"""``docjobs operator``: the kopf operator for DocumentJobs.

One active replica, by deployment strategy rather than kopf peering: the chart runs a single
replica with ``strategy: Recreate``, so a rollout stops the old pod before the new one
starts, and kopf runs ``standalone`` (peering would need kopf's own cluster-wide CRDs).
Two operators overlapping briefly (a partitioned node) would still not duplicate work: Job
names are deterministic and status writes are conditional on the resourceVersion.

The Kubernetes client, the object store and the webhook stores come from
:mod:`docjobs.bootstrap` (the cluster from ``KUBECONFIG`` or the pod's service account, S3
from ``DOCJOBS_S3__*``); this module assembles the controller and the webhook hook from them
and registers kopf's handlers. Its settings are the ``operator`` section of the one
:class:`docjobs.config.Settings` (``DOCJOBS_OPERATOR__*``).
"""

from __future__ import annotations

import logging

import kopf
from prometheus_client import start_http_server

from docjobs.bootstrap import create_kube_client, create_signing_store, create_webhook_stores
from docjobs.config import OperatorSettings, Settings, get_settings
from docjobs.domain.models import DOMAIN
from docjobs.kube.client import ConfigurationError
from docjobs.kube.resources import LABEL_JOB
from docjobs.tracing import ENDPOINT_ENV
from docjobs.tracing import configure as configure_tracing
from docjobs.tracing import flush as flush_traces

from .controller import Controller
from .handlers import register
from .hooks import TerminalHook
from .metrics import API_REQUESTS

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SPARE_CONNECTIONS = 4
"""API-server connections beyond one per worker thread: the tick thread and the webhook
deliveries share the client too."""
EVENT_WORKER_IDLE_SECONDS = 0.5
"""How long kopf keeps an object's event worker for its next event (kopf's default: 5)."""


def kopf_settings(config: OperatorSettings) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    # kopf's own state lives in docjobs.io/* annotations, never in status: the status schema
    # is structural and would prune anything it does not know.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=DOMAIN)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=DOMAIN, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{DOMAIN}/finalizer"
    # Kubernetes Events cost API writes; only problems are worth one.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "docjobs-operator"
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_client_timeout
    settings.watching.connect_timeout = config.watch_connect_timeout
    # Server-side selectors: only runner Jobs and pods travel, not every pod of the cluster.
    settings.watching.label_selectors["batch", "v1", "jobs"] = LABEL_JOB
    settings.watching.label_selectors["v1", "pods"] = LABEL_JOB
    settings.execution.max_workers = config.workers
    if config.event_workers:
        settings.queueing.worker_limit = config.event_workers
        # An object's worker holds its slot while it idles for the next event; the bound
        # would otherwise admit a few objects a second.
        settings.queueing.idle_timeout = EVENT_WORKER_IDLE_SECONDS
    return settings


def count_request(verb: str, code: int) -> None:
    API_REQUESTS.labels(verb, str(code)).inc()


def run(
    namespace: str | None = None,
    liveness_port: int | None = 8080,
    metrics_port: int | None = 9090,
    settings: Settings | None = None,
) -> None:
    """Run until SIGTERM/SIGINT. ``namespace=None``: all namespaces."""
    settings = settings or get_settings()
    config = settings.operator
    namespace = namespace or config.namespace
    config = config.model_copy(update={"namespace": namespace})  # what the controller watches
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # One line per handled event, one per liveness probe otherwise.
    logging.getLogger("kopf").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if configure_tracing(settings.tracing, "docjobs-operator"):
        # Runner pods export where the operator does.
        traced = {ENDPOINT_ENV: settings.tracing.endpoint() or "", **config.runner_env}
        config = config.model_copy(update={"runner_env": traced})
    try:
        store = create_signing_store(settings)
    except ConfigurationError as exc:
        raise SystemExit(f"the operator needs the object store: {exc}") from None
    kube = create_kube_client(
        settings, connections=config.workers + SPARE_CONNECTIONS, on_response=count_request
    )
    hook = TerminalHook(kube, create_webhook_stores(settings, kube), settings.webhooks)
    controller = Controller(
        kube,
        config,
        store,
        hook.on_terminal,
        settings.jobs.max_running_per_tenant,
        on_seen=hook.seen,
        part_pages=settings.runner.part_pages,
        tenant_metrics=settings.usage.tenant_metrics,
        on_batch_end=hook.batch_ended,
        usage_retention_days=settings.usage.retention_days,
    )
    registry = kopf.OperatorRegistry()
    register(registry, controller)
    if metrics_port:
        start_http_server(metrics_port)
    where = f"namespace {namespace}" if namespace else "all namespaces"
    log.info(
        "docjobs operator watching %s (metrics :%s, liveness :%s)",
        where,
        metrics_port,
        liveness_port,
    )
    try:
        kopf.run(
            registry=registry,
            settings=kopf_settings(config),
            standalone=True,
            clusterwide=namespace is None,
            namespaces=[namespace] if namespace else (),
            liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None,
        )
    finally:
        hook.close()
        flush_traces()
