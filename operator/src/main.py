"""``docjobs operator``: the kopf operator for DocumentJobs.

One active replica, by deployment strategy rather than kopf peering: the chart runs a single
replica with ``strategy: Recreate``, so a rollout stops the old pod before the new one
starts, and kopf runs ``standalone`` (peering would need kopf's own cluster-wide CRDs).
Two operators overlapping briefly (a partitioned node) would still not duplicate work: Job
names are deterministic and status writes are conditional on the resourceVersion.

The cluster comes from ``KUBECONFIG`` (or ``~/.kube/config``) outside a pod and from the
service account inside one; S3 settings (for expiring objects) from ``DOCJOBS_S3__*``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import kopf
from prometheus_client import start_http_server

from docjobs.backends.kubernetes.webhooks import SecretWebhookStore
from docjobs.config import get_settings
from docjobs.domain.models import DOMAIN
from docjobs.kube.client import KubeClient
from docjobs.kube.resources import LABEL_JOB
from docjobs.storage.s3 import S3Store
from docjobs.webhooks.records import WebhookStore

from .controller import Controller
from .handlers import register
from .hooks import TerminalHook
from .metrics import API_REQUESTS
from .settings import OperatorSettings

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    return settings


def webhook_stores(client: KubeClient) -> Callable[[str], WebhookStore]:
    """Each namespace's webhook endpoints, as the API registered them; one client for all."""
    secret = get_settings().kubernetes.webhooks_secret
    stores: dict[str, WebhookStore] = {}

    def store_for(namespace: str) -> WebhookStore:
        if namespace not in stores:
            stores[namespace] = SecretWebhookStore(client, namespace, secret)
        return stores[namespace]

    return store_for


def count_request(verb: str, code: int) -> None:
    API_REQUESTS.labels(verb, str(code)).inc()


def run(
    namespace: str | None = None,
    liveness_port: int | None = 8080,
    metrics_port: int | None = 9090,
    config: OperatorSettings | None = None,
) -> None:
    """Run until SIGTERM/SIGINT. ``namespace=None``: all namespaces."""
    config = config or OperatorSettings()
    namespace = namespace or config.namespace
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # One line per handled event, one per liveness probe otherwise.
    logging.getLogger("kopf").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    shared = get_settings()
    if not shared.s3.endpoint:
        # Runner pods hold no store credentials: they reach the store only through URLs
        # the operator signs, so without a store no attempt could run.
        raise SystemExit("the operator needs the object store: set DOCJOBS_S3__ENDPOINT")
    store = S3Store.from_settings(shared.s3)
    kube = KubeClient.from_environment(
        shared.kubernetes.request_timeout_seconds,
        pool_size=config.workers + 4,
        on_response=count_request,
        connect_timeout=shared.kubernetes.connect_timeout_seconds,
    )
    hook = TerminalHook(kube, webhook_stores(kube), shared.webhooks)
    controller = Controller(
        kube,
        config,
        store,
        hook.on_terminal,
        shared.jobs.max_running_per_tenant,
        on_seen=hook.seen,
        part_pages=shared.runner.part_pages,
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
