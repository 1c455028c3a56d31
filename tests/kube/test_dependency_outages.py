"""The API in kubernetes mode while the rig's API server or MinIO stops answering.

Each test stops one shared rig component with SIGSTOP for a few seconds (a hung process or
a cut network path: connections open, nothing answers) and resumes it in a ``finally``.
Meanwhile a request that needs the component gets 503 with ``Retry-After`` within seconds,
``/readyz`` names what is down, ``/healthz`` and reads served from the watch cache answer at
once, and service resumes when the component does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.conftest import Server
from tests.kube.helpers import paused
from tests.probes import health_latencies, held_up
from tests.rig.fixtures import Cluster, wait_for

OUTAGE_ANSWER_SECONDS = 5.0
"""How soon a request stuck on a silent dependency must be answered: well under the
clients' own timeouts (30 s for the API server, minutes for S3)."""


def headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def convert(server: Server, key: str, text: str) -> requests.Response:
    return requests.post(
        f"{server.base}/api/v1/convert/text-to-pdf?async=true",
        headers=headers(key),
        data={"content": text},
        timeout=60,
    )


Request = Callable[[], requests.Response]


def timed(request: Request) -> tuple[requests.Response, float]:
    started = time.monotonic()
    answer = request()
    return answer, time.monotonic() - started


def assert_outage(answer: requests.Response, what: str) -> None:
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    error = answer.json()["error"]
    assert error["code"] == "dependency_unavailable"
    assert what in error["message"], error["message"]


def readiness(server: Server) -> tuple[int, dict[str, str]]:
    answer = requests.get(f"{server.base}/readyz", timeout=10)
    return answer.status_code, answer.json()["dependencies"]


def wait_ready(server: Server) -> None:
    wait_for(lambda: readiness(server)[0] == 200, 30, 0.2, what="/readyz to answer 200 again")


def assert_outage_answered(
    server: Server, down: str, what: str, waits: Request, needs: Request
) -> None:
    """While ``down`` is silent: ``waits``, stuck on it, answers 503 within seconds while
    /healthz keeps answering at once; /readyz names ``down``; ``needs``, which cannot do
    without it, is refused without waiting."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(timed, waits)
        latencies = health_latencies(server.base, lambda: not pending.done())
        answer, took = pending.result()
    assert_outage(answer, what)
    assert took < OUTAGE_ANSWER_SECONDS
    assert len(latencies) >= 5, "the request was answered before /healthz was asked"
    assert not held_up(latencies), latencies

    status, dependencies = readiness(server)
    assert status == 503
    assert [name for name, state in dependencies.items() if state != "ok"] == [down]
    refused, took = timed(needs)
    assert_outage(refused, what)
    assert took < 1.0


def test_a_silent_api_server_answers_503_and_holds_up_nothing_else(
    kube_server: Server, cluster: Cluster
) -> None:
    key = kube_server.key("acme")
    template = {"name": "invoice", "fields": [{"name": "invoice.number", "type": "string"}]}
    created = requests.post(f"{kube_server.base}/v1/templates", headers=headers(key), json=template)
    assert created.status_code == 201, created.text
    template_url = f"{kube_server.base}/v1/templates/{created.json()['templateId']}"
    queued = convert(kube_server, key, "before the outage")
    assert queued.status_code == 202, queued.text
    job_url = queued.json()["status_url"]
    assert readiness(kube_server) == (200, {"kubernetes": "ok", "objectStore": "ok"})

    with paused(cluster, "kube-apiserver"):
        assert_outage_answered(
            kube_server,
            "kubernetes",
            "Kubernetes API server",
            # Templates are read from the API server, not a cache: this one waits on it.
            waits=lambda: requests.get(template_url, headers=headers(key), timeout=60),
            needs=lambda: convert(kube_server, key, "during the outage"),
        )
        # The key and the job come from watch caches: they need no API server.
        polled, took = timed(lambda: requests.get(job_url, headers=headers(key), timeout=10))
        assert polled.status_code == 200 and took < 1.0

    wait_ready(kube_server)
    assert requests.get(template_url, headers=headers(key), timeout=30).status_code == 200
    assert convert(kube_server, key, "after the outage").status_code == 202


def test_a_silent_object_store_answers_503_and_readyz_names_it(
    kube_server: Server, cluster: Cluster
) -> None:
    key = kube_server.key("acme")
    queued = convert(kube_server, key, "before the outage")
    assert queued.status_code == 202, queued.text
    assert readiness(kube_server)[0] == 200

    with paused(cluster, "minio"):
        assert_outage_answered(
            kube_server,
            "objectStore",
            "object store",
            waits=lambda: convert(kube_server, key, "uploaded during the outage"),
            needs=lambda: convert(kube_server, key, "another one"),
        )
        # The job comes from the watch cache: it needs no object store.
        polled = requests.get(queued.json()["status_url"], headers=headers(key), timeout=10)
        assert polled.status_code == 200

    wait_ready(kube_server)
    assert convert(kube_server, key, "after the outage").status_code == 202


def test_downloads_stuck_on_a_hung_object_store_hold_up_no_key_check_or_read(
    kube_server: Server, cluster: Cluster
) -> None:
    """More downloads than the API has threads for the object store, while it hangs: each
    is refused within seconds, and afterwards keys are checked again (the key cache has
    expired), jobs read and templates written as if nothing had happened."""
    key = kube_server.key("acme")
    finished = requests.post(
        f"{kube_server.base}/api/v1/convert/text-to-pdf",
        headers=headers(key),
        data={"content": "a result to download"},
        timeout=120,
    )
    assert finished.status_code == 200, finished.text
    job_id = finished.headers["X-Job-Id"]
    result_url = f"{kube_server.base}/api/v1/jobs/{job_id}/result"
    job_url = f"{kube_server.base}/api/v1/jobs/{job_id}"

    with paused(cluster, "minio"):
        with ThreadPoolExecutor(30) as clients:
            downloads = list(
                clients.map(
                    lambda _: timed(lambda: requests.get(result_url, headers=headers(key))),
                    range(90),
                )
            )
        for answer, took in downloads:
            assert_outage(answer, "object store")
            assert took < OUTAGE_ANSWER_SECONDS
        time.sleep(6)  # past the verified-key cache: the next request checks the key again
        other = kube_server.key("globex")
        for asker in (key, other):
            polled, took = timed(lambda: requests.get(job_url, headers=headers(asker), timeout=10))
            assert polled.status_code == (200 if asker == key else 404) and took < 2.0
        template = {"name": "receipt", "fields": [{"name": "total", "type": "number"}]}
        created, took = timed(
            lambda: requests.post(
                f"{kube_server.base}/v1/templates", headers=headers(key), json=template, timeout=30
            )
        )
        assert created.status_code == 201 and took < 2.0, created.text
        assert requests.get(f"{kube_server.base}/healthz", timeout=5).status_code == 200

    wait_ready(kube_server)
    downloaded = requests.get(result_url, headers=headers(key), timeout=30)
    assert downloaded.status_code == 200 and downloaded.content.startswith(b"%PDF")
