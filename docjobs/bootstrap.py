"""The composition root: which backend, stores and clients the settings ask for.

The CLI, the API app and the operator build what they need here and nowhere else.
"""

from __future__ import annotations

from docjobs.auth.keys import KeyStore
from docjobs.backends.base import Backend
from docjobs.config import Settings


def create_backend(settings: Settings) -> Backend:
    if settings.backend == "embedded":
        from docjobs.backends.embedded.backend import EmbeddedBackend

        return EmbeddedBackend(settings)
    if settings.backend == "kubernetes":
        from docjobs.backends.kubernetes.backend import KubeBackend

        return KubeBackend(settings)
    raise NotImplementedError(f"backend {settings.backend!r} is not available yet")


def create_key_store(settings: Settings) -> KeyStore:
    """The backend's key store alone, for commands that manage keys without serving."""
    plans = settings.rate_limits.plans
    if settings.backend == "kubernetes":
        from docjobs.backends.kubernetes.keys import SecretKeyStore
        from docjobs.kube.client import KubeClient

        kube = settings.kubernetes
        client = KubeClient.from_environment(
            kube.request_timeout_seconds, connect_timeout=kube.connect_timeout_seconds
        )
        return SecretKeyStore(client, kube.namespace, kube.keys_secret, plans=plans)
    if settings.backend == "embedded":
        from docjobs.backends.embedded.database import SQLiteDatabase
        from docjobs.backends.embedded.keys import SQLiteKeyStore

        return SQLiteKeyStore(SQLiteDatabase(settings.data_dir.resolve() / "docjobs.db"), plans)
    raise NotImplementedError(f"backend {settings.backend!r} is not available yet")
