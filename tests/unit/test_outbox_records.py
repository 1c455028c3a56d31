"""The delivery driver when its journal fails the write of a settled delivery (the API server
restarting under the Kubernetes outbox, say): the receiver's answer is known, so the record
is written again later and the event is never sent again (a second send would reach the
receiver twice, with no restart)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from docjobs.kube.client import KubeError
from docjobs.webhooks import driver
from docjobs.webhooks.delivery import DeliveryAttempt
from docjobs.webhooks.driver import PriorTries, deliver_event
from docjobs.webhooks.fanout import Target
from docjobs.webhooks.messages import new_secret
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.queue import DeliveryQueue
from docjobs.webhooks.records import PendingEvent
from tests.receivers import serve

OK = (200, {}, b"{}")


class RefusingJournal:
    """Refuses the first ``refusals`` settle writes, as an API server restarting would."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.written: list[tuple[str, bool, int]] = []

    def prior(self) -> dict[str, PriorTries]:
        return {}

    def record_try(
        self, target: str, attempts: Sequence[DeliveryAttempt], next_try_at: datetime
    ) -> None:
        raise AssertionError("a delivered event has no pending try")

    def settle(self, target: str, attempts: Sequence[DeliveryAttempt], delivered: bool) -> None:
        if self.refusals:
            self.refusals -= 1
            raise KubeError(503, "ServiceUnavailable", "the API server is restarting")
        self.written.append((target, delivered, len(attempts)))


def test_a_settled_delivery_whose_record_fails_is_written_again_not_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(driver, "RECORD_RETRY_SECONDS", 0.2)
    settings = WebhookSettings(allow_private_targets=True, timeout_seconds=5)
    queue = DeliveryQueue(1)
    journal = RefusingJournal(refusals=2)
    settled: list[bool] = []
    done = threading.Event()

    def on_settled() -> None:
        settled.append(True)
        done.set()

    try:
        with serve([OK, OK]) as receiver:
            target = Target("https-job-url", receiver.url, new_secret())
            data = {"jobId": "job-1", "status": "completed"}
            event = PendingEvent("job-1", "job.completed", "acme", data, None, datetime.now(UTC))
            deliver_event(queue, settings, journal, event, [target], on_settled)
            assert done.wait(20)
    finally:
        queue.close()
    assert settled == [True]
    assert len(receiver.received) == 1
    assert journal.written == [("https-job-url", True, 1)]
