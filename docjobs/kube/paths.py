"""Every API-server path docjobs requests, built one way.

Each name (namespace, object, subresource) is quoted as one path segment, so a name can
never reach another path than the one meant (``a/b`` or ``x?y`` stay inside their segment).
"""

from __future__ import annotations

from urllib.parse import quote

from .resources import GROUP, PLURAL, TEMPLATE_PLURAL, VERSION

DOCUMENTJOBS = f"{GROUP}/{VERSION}"
"""The group/version of DocumentJobs and DocumentTemplates."""
BATCH = "batch/v1"
CORE = "v1"
CRDS = "apiextensions.k8s.io/v1"


def segment(name: str) -> str:
    """``name`` as one path segment."""
    return quote(name, safe="")


def api_path(
    group_version: str,
    plural: str,
    name: str | None = None,
    *,
    namespace: str | None = None,
    subresource: str | None = None,
) -> str:
    """``/api/v1/...`` for the core group (``v1``), ``/apis/<group>/<version>/...`` for the
    others; namespaced when ``namespace`` is given, the collection when ``name`` is not."""
    path = "/api/v1" if group_version == CORE else f"/apis/{group_version}"
    if namespace is not None:
        path += f"/namespaces/{segment(namespace)}"
    path += f"/{plural}"
    if name is not None:
        path += f"/{segment(name)}"
        if subresource is not None:
            path += f"/{segment(subresource)}"
    return path


def documentjobs_path(
    namespace: str, name: str | None = None, subresource: str | None = None
) -> str:
    return api_path(DOCUMENTJOBS, PLURAL, name, namespace=namespace, subresource=subresource)


def templates_path(namespace: str, name: str | None = None) -> str:
    return api_path(DOCUMENTJOBS, TEMPLATE_PLURAL, name, namespace=namespace)


def core_path(
    namespace: str, plural: str, name: str | None = None, subresource: str | None = None
) -> str:
    """Secrets, ConfigMaps, pods... of one namespace."""
    return api_path(CORE, plural, name, namespace=namespace, subresource=subresource)


def jobs_path(namespace: str, name: str | None = None) -> str:
    """``batch/v1`` Jobs: the runner Jobs."""
    return api_path(BATCH, "jobs", name, namespace=namespace)
