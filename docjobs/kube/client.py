"""The Kubernetes API as plain JSON: configuration, requests, watches, data maps.

Why not the generated ``CustomObjectsApi``/``CoreV1Api``: kubernetes-client 37 validates
every call with pydantic and picks PATCH content types by itself, and its models change
between major versions. We need a handful of paths on three resources with an exact wire
format (merge patches, raw JSON, streamed watches), so we send and receive dicts. The
package's ``ApiClient`` still does what must stay right: kubeconfig and in-cluster loading,
TLS, and token refresh (in-cluster service-account tokens rotate).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from kubernetes import config as kube_config
from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration

from docjobs.kube.resources import GROUP, PLURAL, VERSION

JSON = dict[str, Any]
T = TypeVar("T")

MERGE_PATCH = "application/merge-patch+json"
DataKind = Literal["secrets", "configmaps"]


class KubeError(Exception):
    """A non-2xx answer of the API server, with its ``Status`` reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """AlreadyExists on create, a stale resourceVersion on update."""
        return self.status == 409

    @property
    def gone(self) -> bool:
        """410: the resourceVersion a watch or list continued from is too old."""
        return self.status == 410


# Untyped in the package; typed names keep mypy --strict on our side of the call.
_load_incluster: Callable[..., None] = kube_config.load_incluster_config
_load_kubeconfig: Callable[..., None] = kube_config.load_kube_config


class ConfigurationError(Exception):
    """The kubernetes backend is missing a setting it cannot do without."""


def load_configuration(kubeconfig: str | None = None) -> Configuration:
    """``kubeconfig`` or ``KUBECONFIG`` when given, else the pod's service account, else
    ``~/.kube/config``."""
    configuration = Configuration()
    in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ
    if in_cluster and not (kubeconfig or os.environ.get("KUBECONFIG")):
        _load_incluster(client_configuration=configuration)
    else:
        _load_kubeconfig(config_file=kubeconfig, client_configuration=configuration)
    return configuration


def documentjobs_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace, safe='')}/{PLURAL}"
    return f"{path}/{quote(name, safe='')}" if name else path


def core_path(namespace: str, plural: str, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/{plural}"
    return f"{path}/{quote(name, safe='')}" if name else path


class WatchStream:
    """The events of one watch request, as they arrive; ``close`` from any thread ends it."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def __iter__(self) -> Iterator[JSON]:
        pending = b""
        for chunk in self._response.stream(1 << 16, decode_content=True):
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    event: JSON = json.loads(line)
                    yield event

    def close(self) -> None:
        # shutdown() unblocks a read in progress in another thread; close() alone does not.
        # A stream that ended by itself has given its connection back already: nothing to do.
        with contextlib.suppress(RuntimeError):
            self._response.shutdown()
        self._response.release_conn()


class KubeClient:
    def __init__(self, configuration: Configuration, request_timeout: float = 30.0) -> None:
        self.api = ApiClient(configuration)
        self.request_timeout = request_timeout

    @classmethod
    def from_environment(
        cls, request_timeout: float = 30.0, kubeconfig: str | None = None
    ) -> KubeClient:
        return cls(load_configuration(kubeconfig), request_timeout)

    def _send(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        content_type: str,
        timeout: float | tuple[float, float],
    ) -> Any:
        """The urllib3 response, body not read yet; a non-2xx answer raises KubeError."""
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": "application/json", "Content-Type": content_type}
        request = self.api.param_serialize(
            method,
            path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request, _request_timeout=timeout).response
        if not 200 <= response.status <= 299:
            raise _error(response.status, response.data)
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> JSON:
        response = self._send(method, path, query, body, content_type, self.request_timeout)
        data = response.data
        result: JSON = json.loads(data) if data else {}
        return result

    def get(self, path: str, **query: Any) -> JSON:
        return self.request("GET", path, query=query)

    def get_text(self, path: str) -> str:
        """A non-JSON endpoint such as the API server's ``/metrics``."""
        response = self._send("GET", path, None, None, "text/plain", self.request_timeout)
        return str(response.data.decode("utf-8", "replace"))

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body=body)

    def replace(self, path: str, body: JSON) -> JSON:
        return self.request("PUT", path, body=body)

    def merge_patch(self, path: str, body: JSON) -> JSON:
        return self.request("PATCH", path, body=body, content_type=MERGE_PATCH)

    def delete(self, path: str) -> JSON:
        return self.request("DELETE", path)

    def watch(
        self, path: str, resource_version: str, timeout_seconds: int, **query: Any
    ) -> WatchStream:
        """Changes after ``resource_version``, bookmarks included, until the server ends the
        watch after ``timeout_seconds``; the client gives up 30 s after that."""
        query = {
            **query,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        timeout = (min(self.request_timeout, 10.0), timeout_seconds + 30.0)
        return WatchStream(self._send("GET", path, query, None, "application/json", timeout))

    def close(self) -> None:
        close: Callable[[], None] = self.api.close
        close()

    # --- Secrets and ConfigMaps as small key-value stores --------------------------------------

    def read_data(self, namespace: str, kind: DataKind, name: str) -> dict[str, str]:
        """The object's data entries, decoded; empty when it does not exist."""
        try:
            return data_of(kind, self.get(core_path(namespace, kind, name)))
        except KubeError as exc:
            if exc.not_found:
                return {}
            raise

    def update_data(
        self,
        namespace: str,
        kind: DataKind,
        name: str,
        change: Callable[[dict[str, str]], T],
        attempts: int = 8,
    ) -> T:
        """Read, ``change`` in place, write back; created when missing.

        The write carries the resourceVersion read, so two writers at once (two ``docjobs keys
        create``, two API replicas) cannot lose each other's entries: the loser gets 409 and
        applies its change again to the fresh object.
        """
        for _ in range(attempts):
            try:
                current: JSON | None = self.get(core_path(namespace, kind, name))
            except KubeError as exc:
                if not exc.not_found:
                    raise
                current = None
            data = data_of(kind, current) if current else {}
            before = dict(data)
            result = change(data)
            if data == before:
                return result  # nothing to write (e.g. revoking an unknown key)
            metadata: JSON = {"name": name, "namespace": namespace}
            if current is not None:
                metadata = {**current["metadata"], **metadata}
            body = {"apiVersion": "v1", "kind": _KIND[kind], "metadata": metadata}
            body["data"] = _encode(kind, data)
            if kind == "secrets":
                body["type"] = "Opaque"
            try:
                if current is None:
                    self.create(core_path(namespace, kind), body)
                else:
                    self.replace(core_path(namespace, kind, name), body)
            except KubeError as exc:
                if exc.conflict:
                    continue
                raise
            return result
        raise KubeError(409, "Conflict", f"{kind}/{name} kept changing; gave up after {attempts}")


CLIENT_ERRORS = (KubeError, ConfigurationError, kube_config.ConfigException)
"""What a command reports as a one-line error: the API server said no, or no usable config."""

_KIND = {"secrets": "Secret", "configmaps": "ConfigMap"}


def data_of(kind: DataKind, resource: JSON) -> dict[str, str]:
    data = resource.get("data") or {}
    if kind == "secrets":
        return {k: base64.b64decode(v).decode() for k, v in data.items()}
    return {k: str(v) for k, v in data.items()}


def _encode(kind: DataKind, data: dict[str, str]) -> dict[str, str]:
    if kind == "secrets":
        return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return dict(data)


def _error(status: int, body: bytes) -> KubeError:
    try:
        payload = json.loads(body)
        return KubeError(status, str(payload.get("reason", "")), str(payload.get("message", "")))
    except (ValueError, AttributeError):
        return KubeError(status, "", body.decode("utf-8", "replace")[:500])
