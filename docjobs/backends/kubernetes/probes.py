"""A process's probes and metrics over plain HTTP, for a pod that serves no API: ``/healthz``
(liveness), ``/readyz`` (readiness) and ``/metrics`` (Prometheus), answered from a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


def serve_probes(
    port: int, healthy: Callable[[], bool], ready: Callable[[], bool]
) -> ThreadingHTTPServer | None:
    """Serves the probes on ``port`` (all addresses: the kubelet probes the pod's) until
    the server's ``shutdown``; None when ``port`` is 0."""
    if not port:
        return None

    class Probes(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif self.path in ("/healthz", "/readyz"):
                ok = healthy() if self.path == "/healthz" else ready()
                self._answer(200 if ok else 503, b"ok\n" if ok else b"unavailable\n")
            else:
                self._answer(404, b"not found\n")

        def _answer(self, code: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Probes every few seconds are not worth a log line."""

    server = ThreadingHTTPServer(("0.0.0.0", port), Probes)  # noqa: S104 - probed by kubelet
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    return server
