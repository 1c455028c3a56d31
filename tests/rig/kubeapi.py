"""A small JSON-over-HTTPS client for the rig, built on the kubernetes client's
kubeconfig loader.

Why not the generated API classes: kubernetes-client 37 moved its models to
pydantic and changed how PATCH content types are picked, so code written for
one major version breaks on the other. The rig only needs a dozen calls, so it
sends and receives plain dicts; the kubernetes package is used for what is
stable across versions: reading a kubeconfig into a Configuration (host, TLS
files, auth header).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import urllib3

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the apiserver."""

    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        self.status = status
        self.body = body
        try:
            self.reason = str(json.loads(body).get("reason", ""))
        except ValueError:
            self.reason = ""
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")


class Kube:
    """Minimal apiserver client: request() for CRUD, watch() for streams."""

    def __init__(self, kubeconfig: str) -> None:
        # Imported here so modules that only import this one (fixtures) load
        # without the package; using the rig needs it.
        try:
            from kubernetes import client as k8s_client
            from kubernetes import config as k8s_config
        except ImportError as e:
            raise ImportError("the docjobs test rig needs the `kubernetes` package") from e
        cfg: Any = k8s_client.Configuration()
        load: Any = k8s_config.load_kube_config  # untyped in some client versions
        load(config_file=kubeconfig, client_configuration=cfg)
        self.host: str = str(cfg.host).rstrip("/")
        self._headers: dict[str, str] = {"Accept": "application/json"}
        for setting in cfg.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                self._headers[setting["key"]] = setting["value"]
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        if not cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        self._http = urllib3.PoolManager(maxsize=8, ssl_context=ctx)

    def _url(self, path: str, params: dict[str, Any] | None) -> str:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return self.host + path + ("?" + urlencode(query) if query else "")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> JSON:
        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        resp = self._http.request(
            method,
            self._url(path, params),
            body=data,
            headers=headers,
            timeout=urllib3.Timeout(connect=5.0, read=timeout),
            retries=False,
        )
        text = resp.data.decode("utf-8", "replace")
        if resp.status >= 300:
            raise ApiError(resp.status, method, path, text)
        return json.loads(text) if text else {}

    def get(self, path: str, **params: Any) -> JSON:
        return self.request("GET", path, params=params)

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body)

    def patch(self, path: str, body: JSON, content_type: str = MERGE_PATCH) -> JSON:
        return self.request("PATCH", path, body, content_type=content_type)

    def delete(self, path: str, body: JSON | None = None) -> JSON:
        return self.request("DELETE", path, body)

    def watch(self, path: str, timeout_seconds: int = 300, **params: Any) -> Iterator[JSON]:
        """Yield watch events ({"type", "object"}) until the server closes.

        The server ends the stream after timeout_seconds; callers re-list or
        re-watch from the last resourceVersion. A 410 arrives as an ERROR event.
        """
        params = {**params, "watch": "true", "timeoutSeconds": timeout_seconds}
        resp = self._http.request(
            "GET",
            self._url(path, params),
            headers=self._headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=5.0, read=timeout_seconds + 30),
            retries=False,
        )
        try:
            if resp.status >= 300:
                raise ApiError(resp.status, "WATCH", path, resp.read().decode("utf-8", "replace"))
            buf = b""
            for chunk in resp.stream(4096, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            resp.release_conn()
