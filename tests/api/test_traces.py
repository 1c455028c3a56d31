"""One trace per job in embedded mode, seen by a real OpenTelemetry Collector: the API's
request, the queue wait and the warm worker's attempt share the client's trace id, and the
webhook receiver gets that trace in its ``traceparent``; without configuration nothing is
exported, though the job and its webhook still carry the client's trace."""

from __future__ import annotations

import secrets
import time

import pytest
import requests

from tests.collector import Collector, running_collector
from tests.receivers import serve


@pytest.fixture
def collector(tmp_path) -> Collector:
    with running_collector(tmp_path / "otelcol") as running:
        yield running


def client_traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def converted_with_webhook(make_server, traceparent: str, **env: str) -> tuple[dict, dict]:
    """A Markdown conversion submitted async with ``traceparent``; its job once complete,
    and the headers of the webhook it announced its end with."""
    srv = make_server(
        DOCJOBS_RUNNER__CONCURRENCY="1", DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS="true", **env
    ).start()
    key = srv.key("traced")
    with serve([(200, {}, b"{}")]) as receiver:
        hook = requests.post(
            f"{srv.base}/v1/webhooks", headers={"X-API-Key": key}, json={"url": receiver.url}
        )
        assert hook.status_code == 201, hook.text
        answer = requests.post(
            f"{srv.base}/api/v1/convert/markdown-to-pdf?async=true",
            headers={"X-API-Key": key, "traceparent": traceparent},
            files={"file": ("note.md", b"# Traced\n\nOne trace per job.", "text/markdown")},
        )
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]
        deadline = time.monotonic() + 60
        while (
            job := requests.get(
                f"{srv.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}
            ).json()
        )["status"] not in ("complete", "failed", "cancelled"):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        delivered = receiver.wait_for(1, timeout=30)[0]
    return job, delivered.headers


def test_api_and_worker_spans_share_the_clients_trace(make_server, collector) -> None:
    trace_id, traceparent = client_traceparent()
    job, webhook = converted_with_webhook(
        make_server, traceparent, DOCJOBS_TRACING__OTLP_ENDPOINT=collector.endpoint
    )
    assert job["status"] == "complete", job
    spans = collector.wait_for(
        trace_id,
        {
            ("docjobs-api", "POST /api/v1/convert/markdown-to-pdf"),
            ("docjobs-api", "queue wait"),
            ("docjobs-worker", "attempt"),
            ("docjobs-api", "webhook delivery"),
        },
    )
    # The receiver's parent is the delivery's span, in the client's trace.
    _, sent_trace, sent_parent, _ = webhook["traceparent"].split("-")
    assert sent_trace == trace_id
    delivery = next(s for s in spans if s.name == "webhook delivery")
    assert sent_parent == delivery.span_id
    # The request's span is a child of the client's.
    request = next(s for s in spans if s.name.startswith("POST "))
    assert request.parent_span_id == traceparent.split("-")[2]


def test_without_configuration_nothing_is_exported(make_server, collector, monkeypatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    _, traceparent = client_traceparent()
    job, webhook = converted_with_webhook(make_server, traceparent)
    assert job["status"] == "complete", job
    # The job's trace still reaches the receiver: the client's, untouched.
    assert webhook["traceparent"] == traceparent
    time.sleep(1.5)  # longer than an exporter's batch delay and the collector's flush
    assert collector.spans() == []
