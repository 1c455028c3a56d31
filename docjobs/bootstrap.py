"""The composition root: which backend, stores and clients the settings ask for.

The CLI, the API app and the operator build what they need here and nowhere else.
"""

from __future__ import annotations

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
