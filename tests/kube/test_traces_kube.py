"""One trace per job on Kubernetes, seen by a real OpenTelemetry Collector: the API's
request, the operator's queue wait and webhook delivery, and the runner pod's attempt all
carry the client's trace id, and so does the ``traceparent`` the webhook receiver gets."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.collector import Collector, running_collector
from tests.receivers import LocalServer, serve

from .conftest import Operator


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    with running_collector(tmp_path / "otelcol") as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    with serve([(200, {}, b"{}")]) as running:
        yield running


@pytest.fixture
def api_env(collector: Collector) -> dict[str, str]:
    return {
        "DOCJOBS_TRACING__OTLP_ENDPOINT": collector.endpoint,
        "DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
    }


@pytest.fixture
def operator_env(collector: Collector) -> dict[str, str]:
    # The operator hands its endpoint on to the runner pods it creates.
    return {
        "DOCJOBS_TRACING__OTLP_ENDPOINT": collector.endpoint,
        "DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
    }


def test_one_trace_from_the_request_to_the_webhook(
    kube_server, operator: Operator, collector: Collector, receiver: LocalServer
) -> None:
    key = kube_server.key("traced")
    headers = {"X-API-Key": key}
    hook = requests.post(
        f"{kube_server.base}/v1/webhooks", headers=headers, json={"url": receiver.url}
    )
    assert hook.status_code == 201, hook.text
    trace_id = secrets.token_hex(16)
    answer = requests.post(
        f"{kube_server.base}/api/v1/convert/markdown-to-pdf?async=true",
        headers={**headers, "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        files={
            "file": ("note.md", b"# Traced\n\nFrom the request to the webhook.", "text/markdown")
        },
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    deadline = time.monotonic() + 120
    while True:
        job = requests.get(f"{kube_server.base}/api/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("complete", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, job
        operator.check_alive()
        time.sleep(0.2)
    assert job["status"] == "complete", job

    delivered = receiver.wait_for(1, timeout=60)[0]
    assert delivered.headers["traceparent"].split("-")[1] == trace_id
    collector.wait_for(
        trace_id,
        {
            ("docjobs-api", "POST /api/v1/convert/markdown-to-pdf"),
            ("docjobs-operator", "queue wait"),
            ("docjobs-runner", "attempt"),
            ("docjobs-operator", "webhook delivery"),
        },
    )
