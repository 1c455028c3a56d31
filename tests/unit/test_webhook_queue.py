"""The delivery queue: a fixed number of threads, retries scheduled rather than slept through."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.webhooks import SQLiteWebhookStore
from docjobs.webhooks.driver import deliver_event
from docjobs.webhooks.fanout import targets_of
from docjobs.webhooks.messages import message_id
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.queue import DeliveryQueue, Task
from docjobs.webhooks.records import PendingEvent
from tests.receivers import serve

BACKOFF = 1.0
DATA = {"jobId": "job"}
OK = (200, {}, b"{}")
NOW = datetime.now(UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteWebhookStore]:
    db = SQLiteDatabase(tmp_path / "jobs.db")
    yield SQLiteWebhookStore(db)
    db.close()


def queue_job_event(
    queue: DeliveryQueue,
    store: SQLiteWebhookStore,
    settings: WebhookSettings,
    event: PendingEvent,
    on_settled: Task,
) -> None:
    """The event's delivery as embedded mode queues it: the SQLite journal, every target."""
    targets = targets_of(store, event.tenant, event.event_type, event.webhook_url)
    journal = store.journal(event.job_id, event.event_type)
    deliver_event(queue, settings, journal, event, targets, on_settled)


@pytest.fixture
def queue() -> Iterator[DeliveryQueue]:
    one = DeliveryQueue(1)
    yield one
    one.close()


def test_a_retry_waiting_out_its_backoff_leaves_the_thread_to_other_events(
    store: SQLiteWebhookStore, queue: DeliveryQueue
) -> None:
    settings = WebhookSettings(
        allow_private_targets=True, initial_backoff_seconds=BACKOFF, timeout_seconds=5
    )
    settled = {"flaky": threading.Event(), "healthy": threading.Event()}
    with serve([(503, {}, b"{}"), OK]) as flaky, serve([OK]) as healthy:
        store.create("flaky", flaky.url, ["job.completed"])
        store.create("healthy", healthy.url, ["job.completed"])
        for tenant in ("flaky", "healthy"):  # on the queue's one thread, in this order
            event = PendingEvent(f"job-{tenant}", "job.completed", tenant, DATA, None, NOW)
            queue_job_event(queue, store, settings, event, settled[tenant].set)
        assert settled["healthy"].wait(10) and settled["flaky"].wait(10)
    first, retry = flaky.received
    (delivered,) = healthy.received
    # The healthy receiver's event went while the flaky one's retry waited.
    assert first.at < delivered.at < retry.at
    assert retry.at - first.at >= BACKOFF
    assert retry.headers["webhook-id"] == first.headers["webhook-id"]
    (record,) = store.deliveries("job-flaky")
    assert record.delivered and [a.status_code for a in record.attempts] == [503, 200]
    assert store.deliveries("job-healthy")[0].delivered


def test_targets_delivered_before_are_skipped_and_a_closed_queue_settles_nothing(
    store: SQLiteWebhookStore, queue: DeliveryQueue
) -> None:
    settings = WebhookSettings(allow_private_targets=True)
    with serve([OK]) as first, serve([OK]) as second:
        done, _ = store.create("acme", first.url, ["job.completed"])
        store.create("acme", second.url, ["job.completed"])
        store.record("job-1", done.id, "job.completed", [], True)  # before a restart
        settled = threading.Event()
        event = PendingEvent("job-1", "job.completed", "acme", DATA, None, NOW)
        queue_job_event(queue, store, settings, event, settled.set)
        assert settled.wait(10)
        assert first.received == [] and len(second.received) == 1
        assert second.received[0].headers["webhook-id"] != message_id(
            "job-1", done.id, "job.completed"
        )

        queue.close()
        dropped = threading.Event()
        event = PendingEvent("job-2", "job.completed", "acme", DATA, None, NOW)
        queue_job_event(queue, store, settings, event, dropped.set)
        assert not dropped.wait(0.5)
        assert len(second.received) == 1  # left to the outbox, resent on the next start
