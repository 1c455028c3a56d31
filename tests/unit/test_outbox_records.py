"""The Kubernetes outbox when the API server fails the write of a settled delivery: the
receiver's answer is known, so the record is written again later and the event is never
sent again (a second send would reach the receiver twice, with no operator restart)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from docjobs.backends.kubernetes import outbox as outbox_module
from docjobs.backends.kubernetes.outbox import Change, _TargetOutbox
from docjobs.kube.client import KubeError
from docjobs.kube.resources import WebhookDelivery, WebhookOutbox
from docjobs.webhooks.delivery import new_secret
from docjobs.webhooks.fanout import Target, message_to
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.queue import DeliveryQueue
from tests.receivers import serve

OK = (200, {}, b"{}")


def test_a_settled_delivery_whose_record_fails_is_written_again_not_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox_module, "RECORD_RETRY_SECONDS", 0.2)
    settings = WebhookSettings(allow_private_targets=True, timeout_seconds=5)
    queue = DeliveryQueue(1)
    refusals = [KubeError(503, "ServiceUnavailable", "the API server is restarting")] * 2
    written: list[WebhookDelivery] = []
    settled: list[bool] = []
    done = threading.Event()

    def update(change: Change) -> None:
        if refusals:
            raise refusals.pop()
        after = change(WebhookOutbox(event="job.completed"))
        assert after is not None
        written.extend(after.deliveries)

    def on_settled() -> None:
        settled.append(True)
        done.set()

    try:
        with serve([OK, OK]) as receiver:
            target = Target("https-job-url", receiver.url, new_secret())
            data = {"jobId": "job-1", "status": "completed"}
            message = message_to(target, "job-1", "job.completed", data, datetime.now(UTC))
            owner = SimpleNamespace(settings=settings, queue=queue, namespace="tenant-a")
            delivery = _TargetOutbox(
                owner,  # type: ignore[arg-type]
                "dj-1",
                "job-1",
                message,
                target,
                update,
                on_settled,
            )
            queue.submit(delivery)
            assert done.wait(20)
    finally:
        queue.close()
    assert settled == [True]
    assert len(receiver.received) == 1
    assert [(d.state, len(d.attempts)) for d in written] == [("Delivered", 1)]
