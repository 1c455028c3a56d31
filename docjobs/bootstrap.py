"""The composition root: which backend, stores and clients the settings ask for.

The API app, the CLI and the operator build every client of an external system here and
nowhere else: the Kubernetes API server, the object store, the key and webhook stores. Each
builder imports its implementation only when it is chosen, so embedded mode never imports
the ``kubernetes`` package. What is specific to one process (the operator's controller and
webhook hook, the API's middleware) is assembled in that process's package from these parts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from docjobs.auth.keys import KeyStore
from docjobs.backends.base import Backend
from docjobs.config import Settings
from docjobs.usage.records import UsageReader
from docjobs.webhooks.records import WebhookStore

if TYPE_CHECKING:
    from docjobs.backends.kubernetes.workers import ClaimingWorkers
    from docjobs.kube.client import KubeClient, ResponseHook
    from docjobs.storage.s3 import S3Store

DEFAULT_KUBE_CONNECTIONS = 10
"""Connections to the API server a client keeps; the operator asks for one per worker."""


def create_backend(settings: Settings) -> Backend:
    if settings.backend == "embedded":
        from docjobs.backends.embedded.backend import EmbeddedBackend

        return EmbeddedBackend(settings)
    if settings.backend == "kubernetes":
        from docjobs.backends.kubernetes.backend import KubeBackend

        objects = create_signing_store(settings)
        return KubeBackend(settings, create_kube_client(settings), objects)
    raise NotImplementedError(f"backend {settings.backend!r} is not available yet")


def create_claiming_workers(settings: Settings) -> ClaimingWorkers:
    """``docjobs workers``: warm workers that claim small DocumentJobs of the namespace.
    They read inputs and write results in the S3 bucket the API and the operator use, so
    nothing runs without it (``ConfigurationError``)."""
    from docjobs.backends.kubernetes.workers import ClaimingWorkers

    create_signing_store(settings)  # refuses a missing endpoint before the cluster is asked
    return ClaimingWorkers(settings, create_kube_client(settings))


def create_key_store(settings: Settings) -> KeyStore:
    """The backend's key store alone, for commands that manage keys without serving."""
    plans = settings.rate_limits.plans
    if settings.backend == "kubernetes":
        from docjobs.backends.kubernetes.keys import SecretKeyStore

        kube = settings.kubernetes
        return SecretKeyStore(
            create_kube_client(settings), kube.namespace, kube.keys_secret, plans=plans
        )
    if settings.backend == "embedded":
        from docjobs.backends.embedded.database import SQLiteDatabase
        from docjobs.backends.embedded.keys import SQLiteKeyStore

        return SQLiteKeyStore(SQLiteDatabase(settings.data_dir.resolve() / "docjobs.db"), plans)
    raise NotImplementedError(f"backend {settings.backend!r} is not available yet")


def create_usage_reader(settings: Settings) -> UsageReader:
    """Where the backend's usage records are, for commands that report usage without
    serving: the embedded database, or the object store the operator writes them to."""
    if settings.backend == "kubernetes":
        from docjobs.usage.objects import StoredUsage

        return StoredUsage(create_signing_store(settings), settings.kubernetes.namespace)
    if settings.backend == "embedded":
        from docjobs.backends.embedded.database import SQLiteDatabase
        from docjobs.backends.embedded.usage import SQLiteUsage

        return SQLiteUsage(SQLiteDatabase(settings.data_dir.resolve() / "docjobs.db"))
    raise NotImplementedError(f"backend {settings.backend!r} is not available yet")


def create_kube_client(
    settings: Settings,
    *,
    connections: int = DEFAULT_KUBE_CONNECTIONS,
    on_response: ResponseHook | None = None,
) -> KubeClient:
    """A client of the cluster ``KUBECONFIG`` or the pod's service account names, with the
    timeouts of ``settings.kubernetes``; ``on_response`` sees every answer's verb and code."""
    from docjobs.kube.client import KubeClient

    kube = settings.kubernetes
    return KubeClient.from_environment(
        kube.request_timeout_seconds,
        pool_size=connections,
        on_response=on_response,
        connect_timeout=kube.connect_timeout_seconds,
    )


def create_signing_store(settings: Settings) -> S3Store:
    """The S3 bucket of the Kubernetes deployment: runner pods hold no store credentials and
    reach it only through the URLs this store signs, so nothing runs without it."""
    from docjobs.kube.client import ConfigurationError
    from docjobs.storage.s3 import S3Store

    if not settings.s3.endpoint:
        raise ConfigurationError(
            "on kubernetes, files live in S3: set DOCJOBS_S3_ENDPOINT, _BUCKET, _ACCESS_KEY,"
            " _SECRET_KEY and _SECURE (source .local-cluster/env on the rig)"
        )
    return S3Store.from_settings(settings.s3)


def create_webhook_stores(settings: Settings, client: KubeClient) -> Callable[[str], WebhookStore]:
    """Each namespace's webhook endpoints, as the API registered them, over one client."""
    from docjobs.backends.kubernetes.webhooks import SecretWebhookStore

    secret = settings.kubernetes.webhooks_secret
    stores: dict[str, WebhookStore] = {}

    def store_for(namespace: str) -> WebhookStore:
        if namespace not in stores:
            stores[namespace] = SecretWebhookStore(client, namespace, secret)
        return stores[namespace]

    return store_for
