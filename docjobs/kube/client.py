"""The Kubernetes API as plain JSON: the one client of the API, the operator and the test rig.

Why not the generated ``CustomObjectsApi``/``CoreV1Api``: kubernetes-client 37 validates
every call with pydantic and picks PATCH content types by itself, and its models change
between major versions. We need a handful of paths with an exact wire format (merge and
strategic-merge patches, raw JSON, streamed watches), so we send and receive dicts. The
package still does what must stay right and is stable across versions: kubeconfig and
in-cluster loading into a ``Configuration``, the connection pool it builds from one (TLS,
proxy), and the bearer token, refreshed on every request (service-account tokens rotate).

Retries and timeouts are ours, because which request may be sent twice is a question of
what the caller does with the answer:

- A request goes out again only when the API server cannot have acted on it: the connection
  could not be opened (refused, connect timeout). A GET also goes out once more when its
  answer was lost, since reading twice changes nothing.
- A write whose answer was lost (read timeout, reset connection, TLS error) is never sent
  again here. The server may have applied it, and then the copy is refused because of the
  first: a conditional replace answers 409 (the resourceVersion moved: by our own write),
  a create AlreadyExists, a delete 404. The caller would take its own success for someone
  else's change. So the error goes up, and the caller reads again and decides on what is
  there (the operator's steps are written for exactly that).
- No retries on 429/5xx answers: the caller gets the ``KubeError`` and its own backoff
  decides (kopf's handlers, the operator's tick, the watch cache's loop).
- Every request, watches included, has a connect timeout (``connect_timeout``, 5 s by
  default) and a read timeout bounding each wait for data: ``request_timeout``, and for a
  watch its server-side timeout plus 30 s. So a hung API server holds a thread for a read
  timeout (two for a GET, whose lost answer is asked for again) at most.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

import urllib3
from kubernetes import config as kube_config
from kubernetes.client.configuration import Configuration
from kubernetes.client.rest import RESTClientObject
from urllib3.util.retry import Retry

from .paths import core_path

JSON = dict[str, Any]
T = TypeVar("T")

APPLICATION_JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
DataKind = Literal["secrets", "configmaps"]
Propagation = Literal["Background", "Foreground", "Orphan"]

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection by default; a reachable API server accepts in
milliseconds."""
WATCH_GRACE = 30.0
"""Seconds a watch may stay silent beyond its server-side timeout before we give up on it."""

RETRIES = Retry(
    total=2,
    connect=2,  # never reached the server: safe for every verb
    read=1,  # the answer was lost: only for the verbs below
    allowed_methods=frozenset({"GET"}),
    other=0,  # TLS errors can happen after a write was sent: treated as lost answers
    status=0,
    status_forcelist=(),
    respect_retry_after_header=False,
    redirect=False,
    raise_on_status=False,
    backoff_factor=0.2,
)
"""Which requests the transport sends again; see the module docstring for why."""
BUSY_TRIES = 4
"""Sends of a request the API server answers 429 (it sheds load, or a resource's storage is
(re)initializing, as after a CRD update): it has not acted, so any verb may be sent again."""
BUSY_WAIT_SECONDS = 1.0
"""Longest wait before sending again after a 429, whatever its ``Retry-After`` says."""


class KubeError(Exception):
    """A non-2xx answer of the API server, with its ``Status`` reason and message.

    A request that got no answer (refused, timed out, reset) raises urllib3's exception
    instead: nothing was said, and whether a write was applied is unknown."""

    def __init__(self, status: int, reason: str, message: str, request: str = "") -> None:
        where = f"{request}: " if request else ""
        super().__init__(f"{where}HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.request = request

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


class WatchStream:
    """The events of one watch request, as they arrive; ``close`` from any thread ends it.
    Iterating to the end, or leaving a ``with`` block, gives the connection back."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response

    def __iter__(self) -> Iterator[JSON]:
        pending = b""
        try:
            for chunk in self._response.stream(1 << 16, decode_content=True):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        event: JSON = json.loads(line)
                        yield event
        finally:
            self.close()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        # shutdown() unblocks a read in progress in another thread; close() alone does not.
        # A stream that ended by itself has given its connection back already: nothing to do;
        # one cut short is closed, since its connection cannot carry another request.
        with contextlib.suppress(RuntimeError, ValueError, OSError):
            self._response.shutdown()
        self._response.close()
        self._response.release_conn()


ResponseHook = Callable[[str, int], None]
"""Called with the verb and status code of every answer (metrics)."""


class KubeClient:
    """Thread-safe: one client (one connection pool) serves all threads of a process."""

    def __init__(
        self,
        configuration: Configuration,
        request_timeout: float = 30.0,
        pool_size: int = 10,
        on_response: ResponseHook | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.configuration = configuration
        # Read once: the kubeconfig loader's token hook copies its host back on every request.
        self.host = str(configuration.host).rstrip("/")
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.on_response = on_response
        configuration.connection_pool_maxsize = pool_size
        # The package's pool: TLS files, verification, proxy and socket options as the
        # kubeconfig says; more threads than connections open extra ones (block=False).
        self._pool: urllib3.PoolManager = RESTClientObject(configuration).pool_manager

    @classmethod
    def from_environment(
        cls,
        request_timeout: float = 30.0,
        kubeconfig: str | None = None,
        pool_size: int = 10,
        on_response: ResponseHook | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> KubeClient:
        return cls(
            load_configuration(kubeconfig), request_timeout, pool_size, on_response, connect_timeout
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": APPLICATION_JSON}
        # auth_settings() runs the token refresh hook (rotated service-account tokens); its
        # TypedDict differs between package versions, the header entries do not.
        settings: dict[str, Any] = dict(self.configuration.auth_settings())
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return headers

    def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        read_timeout: float,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """The response (body not read yet when ``stream``); a non-2xx answer raises."""
        params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        url = self.host + path + (f"?{urlencode(params)}" if params else "")
        headers = self._headers()
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        for sent in range(1, BUSY_TRIES + 1):
            response = self._pool.request(
                method,
                url,
                body=data,
                headers=headers,
                timeout=urllib3.Timeout(connect=self.connect_timeout, read=read_timeout),
                retries=RETRIES,
                preload_content=not stream,
            )
            if self.on_response is not None:
                self.on_response(method, response.status)
            if response.status != 429 or sent == BUSY_TRIES:
                break
            response.drain_conn()
            response.release_conn()
            time.sleep(_busy_wait(response.headers.get("Retry-After")))
        if not 200 <= response.status <= 299:
            error = _error(response.status, response.data, f"{method} {path}")
            response.release_conn()
            raise error
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = APPLICATION_JSON,
    ) -> JSON:
        response = self._send(method, path, query, body, content_type, self.request_timeout)
        data = response.data
        result: JSON = json.loads(data) if data else {}
        return result

    def get(self, path: str, **query: Any) -> JSON:
        return self.request("GET", path, query=query)

    def find(self, path: str) -> JSON | None:
        """The object, or ``None`` if there is none."""
        try:
            return self.get(path)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    def items(self, path: str, labels: Mapping[str, str] | None = None, **query: Any) -> list[JSON]:
        """A collection's objects, selected by ``labels`` (all of them equal)."""
        if labels:
            query["labelSelector"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found: list[JSON] = self.get(path, **query).get("items") or []
        return found

    def get_text(self, path: str) -> str:
        """A non-JSON endpoint such as the API server's ``/metrics`` or ``/readyz``."""
        response = self._send("GET", path, None, None, "text/plain", self.request_timeout)
        return response.data.decode("utf-8", "replace")

    def create(self, path: str, body: JSON, **query: Any) -> JSON:
        """POST; ``query`` e.g. ``fieldValidation="Strict"``."""
        return self.request("POST", path, query=query, body=body)

    def replace(self, path: str, body: JSON) -> JSON:
        """PUT; conditional when ``body`` carries ``metadata.resourceVersion``."""
        return self.request("PUT", path, body=body)

    def patch(self, path: str, body: JSON, content_type: str = MERGE_PATCH) -> JSON:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def merge_patch(self, path: str, body: JSON) -> JSON:
        return self.patch(path, body, MERGE_PATCH)

    def delete(
        self,
        path: str,
        *,
        propagation: Propagation | None = "Background",
        options: JSON | None = None,
        missing_ok: bool = False,
    ) -> JSON:
        """Delete an object (or a collection). ``Background``: the object goes now and the
        garbage collector takes its dependents; batch/v1 Jobs would otherwise orphan their
        pods. ``options``: more ``DeleteOptions`` (grace period, preconditions).
        ``missing_ok``: an object already gone answers ``{}`` instead of raising."""
        body: JSON = dict(options or {})
        if propagation is not None:
            body["propagationPolicy"] = propagation
        try:
            return self.request("DELETE", path, body=body or None)
        except KubeError as exc:
            if missing_ok and exc.not_found:
                return {}
            raise

    def watch(
        self, path: str, resource_version: str | None, timeout_seconds: int, **query: Any
    ) -> WatchStream:
        """Changes after ``resource_version`` (``None``: the current objects first, as
        ADDED), bookmarks included, until the server ends the watch after
        ``timeout_seconds``; the client gives up ``WATCH_GRACE`` seconds after that. A
        410 Gone arrives as an ``ERROR`` event."""
        query = {
            **query,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        read_timeout = timeout_seconds + WATCH_GRACE
        response = self._send("GET", path, query, None, APPLICATION_JSON, read_timeout, True)
        return WatchStream(response)

    def close(self) -> None:
        self._pool.clear()

    # --- Secrets and ConfigMaps as small key-value stores --------------------------------------

    def read_data(self, namespace: str, kind: DataKind, name: str) -> dict[str, str]:
        """The object's data entries, decoded; empty when it does not exist."""
        resource = self.find(core_path(namespace, kind, name))
        return data_of(kind, resource) if resource is not None else {}

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
            current = self.find(core_path(namespace, kind, name))
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


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error(status: int, body: bytes, request: str) -> KubeError:
    try:
        payload = json.loads(body)
        reason, message = str(payload.get("reason", "")), str(payload.get("message", ""))
    except (ValueError, AttributeError):
        reason, message = "", body.decode("utf-8", "replace")[:500]
    return KubeError(status, reason, message, request)


def _busy_wait(retry_after: str | None) -> float:
    try:
        asked = float(retry_after) if retry_after else BUSY_WAIT_SECONDS
    except ValueError:  # an HTTP date: not worth parsing for a wait this short
        asked = BUSY_WAIT_SECONDS
    return min(max(asked, 0.1), BUSY_WAIT_SECONDS)
