"""A job's end event survives the operator: killed (SIGKILL) while delivering it, the next
operator sends it again, with the same id and body, and once acknowledged never again."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.receivers import Recorded, Reply, serve
from tests.rig.fixtures import wait_for

from .conftest import Jobs, Operator

CONVERT = {"kind": "convert", "sourceFormat": "text"}
PRIVATE_TARGETS = {"DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true"}


def _outbox(jobs: Jobs, name: str, state: str) -> Callable[[], dict[str, Any] | None]:
    def reached() -> dict[str, Any] | None:
        outbox = jobs.status(name).get("webhooks") or {}
        return outbox if outbox.get("state") == state else None

    return reached


def _ids(received: list[Recorded]) -> list[str]:
    return [r.headers["webhook-id"] for r in received]


def test_end_event_is_resent_after_a_kill_and_never_once_acknowledged(
    jobs: Jobs, make_operator: Callable[..., Operator]
) -> None:
    holding = threading.Event()
    release = threading.Event()

    def reply(request: Recorded) -> Reply:
        if not holding.is_set():  # the first delivery: hold it open until the operator dies
            holding.set()
            release.wait(60)
        return 200, {}, b"{}"

    with serve(reply) as receiver:
        first = make_operator(**PRIVATE_TARGETS)
        hook = f"{receiver.url}/hook"
        name = jobs.submit(CONVERT, b"hello", "text/plain", webhook_url=hook)
        wait_for(holding.is_set, 120, 0.05, what="the first delivery")
        status = jobs.status(name)
        assert status["phase"] == "Complete"
        assert status["webhooks"]["event"] == "job.completed"
        assert status["webhooks"]["state"] == "Pending"
        first.kill()
        release.set()

        second = make_operator(**PRIVATE_TARGETS)
        held, resent = receiver.wait_for(2, timeout=60)
        assert resent.headers["webhook-id"] == held.headers["webhook-id"]
        assert resent.body == held.body
        secret = jobs.api.read_data(jobs.ns, "secrets", "docjobs-webhooks")["jobs.acme"]
        event = Webhook(secret).verify(resent.body, resent.headers)
        assert event["type"] == "job.completed" and event["data"]["status"] == "completed"
        outbox = wait_for(_outbox(jobs, name, "Done"), 30, 0.1, what="the outbox closed")
        (delivery,) = outbox["deliveries"]
        assert delivery["state"] == "Delivered" and delivery["target"] == hook
        assert delivery["webhookId"] == held.headers["webhook-id"]
        assert [a.get("statusCode") for a in delivery["attempts"]] == [200]

        # Acknowledged and recorded: a later operator lists the job and sends nothing for
        # it. Another job's event, sent after, shows that this operator does deliver.
        second.kill()
        make_operator(**PRIVATE_TARGETS)
        later = jobs.submit(CONVERT, b"later", "text/plain", webhook_url=hook)
        receiver.wait_for(3, timeout=120)
        wait_for(_outbox(jobs, later, "Done"), 30, 0.1, what="the later job's outbox closed")
        ids = _ids(receiver.received)
        assert len(ids) == 3 and ids.count(held.headers["webhook-id"]) == 2, ids


def test_failing_endpoint_keeps_its_tries_across_a_restart(
    jobs: Jobs, make_operator: Callable[..., Operator]
) -> None:
    policy = {
        **PRIVATE_TARGETS,
        "DOCJOBS_WEBHOOKS__MAX_ATTEMPTS": "3",
        "DOCJOBS_WEBHOOKS__INITIAL_BACKOFF_SECONDS": "3",
    }
    with serve([(503, {}, b"{}")]) as receiver:
        first = make_operator(**policy)
        name = jobs.submit(CONVERT, b"hello", "text/plain", webhook_url=f"{receiver.url}/x")
        receiver.wait_for(1, timeout=120)

        def recorded() -> dict[str, Any] | None:
            outbox = jobs.status(name).get("webhooks") or {}
            deliveries = outbox.get("deliveries") or []
            return deliveries[0] if deliveries else None

        tried = wait_for(recorded, 10, 0.05, what="the first try recorded")
        assert tried["state"] == "Pending" and tried["nextTryAt"]
        first.kill()
        make_operator(**policy)
        outbox = wait_for(_outbox(jobs, name, "Done"), 60, 0.2, what="the outbox closed")
        (delivery,) = outbox["deliveries"]
        # Three tries in all, the one before the kill counted: the policy's, no more.
        assert delivery["state"] == "Failed"
        assert [a.get("statusCode") for a in delivery["attempts"]] == [503, 503, 503]
        assert len(receiver.received) == 3
        assert len(set(_ids(receiver.received))) == 1


def test_a_retry_waiting_its_backoff_leaves_the_only_worker_to_other_jobs(
    jobs: Jobs, make_operator: Callable[..., Operator]
) -> None:
    policy = {
        **PRIVATE_TARGETS,
        "DOCJOBS_WEBHOOKS__MAX_PARALLEL_DELIVERIES": "1",
        "DOCJOBS_WEBHOOKS__INITIAL_BACKOFF_SECONDS": "600",
    }
    with serve([(503, {}, b"{}")]) as failing, serve([(200, {}, b"{}")]) as healthy:
        make_operator(**policy)
        waiting = jobs.submit(CONVERT, b"first", "text/plain", webhook_url=f"{failing.url}/x")
        failing.wait_for(1, timeout=120)
        later = jobs.submit(CONVERT, b"later", "text/plain", webhook_url=f"{healthy.url}/x")
        # Delivered on the one worker while the first job's retry waits out its backoff.
        outbox = wait_for(_outbox(jobs, later, "Done"), 120, 0.1, what="the later outbox closed")
        assert [d["state"] for d in outbox["deliveries"]] == ["Delivered"]
        assert len(healthy.received) == 1
        (retrying,) = jobs.status(waiting)["webhooks"]["deliveries"]
        assert retrying["state"] == "Pending" and retrying["nextTryAt"]
        assert len(failing.received) == 1
