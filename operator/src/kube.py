"""A small, thread-safe JSON client for the few API calls the operator makes.

kopf watches through its own client; handlers need a handful of CRUD calls. The generated
``kubernetes`` API classes change shape between major versions (v37 moved models to
pydantic), so only its stable part is used: loading a kubeconfig or the in-cluster service
account into a ``Configuration`` (host, TLS files, a token that refreshes itself).
"""

from __future__ import annotations

import json
import os
import ssl
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from .metrics import API_REQUESTS

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        self.status = status
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        self.reason = str(parsed.get("reason", "")) if isinstance(parsed, dict) else ""
        self.message = str(parsed.get("message", body[:300])) if isinstance(parsed, dict) else ""
        super().__init__(f"{method} {path}: HTTP {status}: {self.message}")


class Kube:
    def __init__(self, configuration: Any, pool_size: int = 8) -> None:
        self._cfg = configuration
        self.host = str(configuration.host).rstrip("/")
        ctx = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
        if not configuration.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if configuration.cert_file:
            ctx.load_cert_chain(configuration.cert_file, configuration.key_file)
        self._http = urllib3.PoolManager(maxsize=pool_size, block=False, ssl_context=ctx)

    @classmethod
    def from_environment(cls, pool_size: int = 8) -> Kube:
        """In-cluster service account inside a pod, else ``KUBECONFIG`` / ``~/.kube/config``."""
        from kubernetes import client, config

        configuration: Any = client.Configuration()
        # Both loaders are untyped in the client package.
        load: Any = (
            config.load_incluster_config
            if os.environ.get("KUBERNETES_SERVICE_HOST")
            else config.load_kube_config
        )
        load(client_configuration=configuration)
        return cls(configuration, pool_size)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        # auth_settings() runs the token refresh hook (rotated service-account tokens).
        for setting in self._cfg.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: JSON | None = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> JSON:
        headers = self._headers()
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.host + path + ("?" + urlencode(query) if query else "")
        response = self._http.request(
            method,
            url,
            body=data,
            headers=headers,
            timeout=urllib3.Timeout(connect=5.0, read=timeout),
            retries=False,
        )
        API_REQUESTS.labels(method, str(response.status)).inc()
        text = response.data.decode("utf-8", "replace")
        if response.status >= 300:
            raise ApiError(response.status, method, path, text)
        result: JSON = json.loads(text) if text else {}
        return result

    def get(self, path: str, **params: Any) -> JSON:
        return self.request("GET", path, params=params)

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body)

    def replace(self, path: str, body: JSON) -> JSON:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: JSON) -> JSON:
        return self.request("PATCH", path, body, content_type=MERGE_PATCH)

    def delete(self, path: str, propagation: str = "Background") -> None:
        """Background: the object goes now, the garbage collector takes its dependents."""
        try:
            self.request("DELETE", path, {"propagationPolicy": propagation})
        except ApiError as exc:
            if exc.status != 404:
                raise

    def find(self, path: str) -> JSON | None:
        """The object, or ``None`` if there is none."""
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def items(self, path: str, labels: dict[str, str]) -> list[JSON]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found: list[JSON] = self.get(path, labelSelector=selector).get("items") or []
        return found


def q(name: str) -> str:
    """A name as one path segment."""
    return quote(name, safe="")
