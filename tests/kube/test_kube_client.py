"""The one Kubernetes client, against the rig's API server: which requests go out again when
an answer is lost on the way back.

The operator's steps rely on it: a status write is conditional on the resourceVersion read, so
a write sent twice whose first copy was applied answers 409 Conflict (or 404, or
AlreadyExists) for the operator's own change. The client must let the caller know that the
answer was lost instead, and the caller reads again.
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any
from urllib.parse import urlsplit

import pytest
import urllib3

from docjobs.backends.dependencies import outage_detail
from docjobs.kube.client import KubeClient, KubeError, load_configuration
from docjobs.kube.paths import core_path
from tests.rig.fixtures import Cluster

BUSY = json.dumps(
    {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": "storage is (re)initializing",
        "reason": "TooManyRequests",
        "code": 429,
    }
).encode()


class AnswerLosingRelay(ThreadingHTTPServer):
    """Plain HTTP in front of the API server, one request per connection. Every request is
    passed on; the answer to the next request of the verb in ``lose`` is dropped: the API
    server has acted, the client only sees its connection close (a fault that cannot be made
    to happen on demand inside the real API server)."""

    daemon_threads = True

    def __init__(self, upstream: str, ca_file: str) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.upstream = urlsplit(upstream)
        self.context = ssl.create_default_context(cafile=ca_file)
        self.sent: list[str] = []
        self.lose: str | None = None
        self.busy = 0
        """Requests still to answer 429 in the API server's place, passing nothing on (as it
        does while it sheds load or reinitializes a resource's storage after a CRD update)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Relay(BaseHTTPRequestHandler):
    server: AnswerLosingRelay
    protocol_version = "HTTP/1.1"

    def _relay(self) -> None:
        relay = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        relay.sent.append(self.command)
        self.close_connection = True
        if relay.busy:
            relay.busy -= 1
            self._answer(429, BUSY, {"Retry-After": "1"})
            return
        upstream = http.client.HTTPSConnection(
            relay.upstream.hostname or "127.0.0.1",
            relay.upstream.port,
            context=relay.context,
            timeout=30,
        )
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        if relay.lose == self.command:
            relay.lose = None
            return  # nothing written: the connection closes without an answer
        self._answer(answer.status, data, {})

    def _answer(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def relay(cluster: Cluster) -> Iterator[AnswerLosingRelay]:
    configuration = load_configuration(str(cluster.kubeconfig))
    server = AnswerLosingRelay(configuration.host, configuration.ssl_ca_cert)
    Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def lossy(cluster: Cluster, relay: AnswerLosingRelay) -> KubeClient:
    """A client whose requests pass through the relay."""
    configuration = load_configuration(str(cluster.kubeconfig))
    configuration.host = relay.url
    return KubeClient(configuration)


def _configmap(name: str, n: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"n": str(n)},
    }


def test_a_write_whose_answer_is_lost_goes_out_once(
    kube: KubeClient, lossy: KubeClient, relay: AnswerLosingRelay, namespace: str
) -> None:
    configmaps = core_path(namespace, "configmaps")
    path = core_path(namespace, "configmaps", "counter")

    relay.lose = "POST"
    with pytest.raises(urllib3.exceptions.HTTPError):  # no answer, not AlreadyExists
        lossy.create(configmaps, _configmap("counter", 1))
    made = kube.get(path)
    assert made["data"] == {"n": "1"}

    # A conditional replace: sent twice, its copy would answer 409 for our own change.
    relay.lose = "PUT"
    with pytest.raises(urllib3.exceptions.HTTPError):
        lossy.replace(path, {**made, "data": {"n": "2"}})
    assert kube.get(path)["data"] == {"n": "2"}

    relay.lose = "DELETE"
    with pytest.raises(urllib3.exceptions.HTTPError):  # no answer, not 404
        lossy.delete(path)
    assert kube.find(path) is None

    assert [verb for verb in relay.sent if verb != "GET"] == ["POST", "PUT", "DELETE"]


def test_a_read_whose_answer_is_lost_is_asked_again(
    kube: KubeClient, lossy: KubeClient, relay: AnswerLosingRelay, namespace: str
) -> None:
    kube.create(core_path(namespace, "configmaps"), _configmap("settings", 7))
    relay.lose = "GET"
    assert lossy.get(core_path(namespace, "configmaps", "settings"))["data"] == {"n": "7"}
    assert relay.sent == ["GET", "GET"]


def test_a_request_the_api_server_is_too_busy_for_is_sent_again(
    kube: KubeClient, lossy: KubeClient, relay: AnswerLosingRelay, namespace: str
) -> None:
    # A 429 says the server did nothing: a write is sent again too, and lands once.
    relay.busy = 2
    lossy.create(core_path(namespace, "configmaps"), _configmap("busy", 1))
    assert kube.get(core_path(namespace, "configmaps", "busy"))["data"] == {"n": "1"}
    assert relay.sent == ["POST", "POST", "POST"]
    # Busy for longer than the client waits: the caller hears 429 (an outage, not a bug).
    relay.busy = 10
    with pytest.raises(KubeError) as refused:
        lossy.get(core_path(namespace, "configmaps", "busy"))
    assert refused.value.status == 429
    assert outage_detail(refused.value) == "HTTP 429 TooManyRequests"
