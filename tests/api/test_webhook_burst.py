"""A burst of finished jobs is announced on a fixed number of delivery threads, each event
once, from the outbox."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import requests

from tests.receivers import Recorded, Reply, serve

BURST = 60
"""Jobs whose deliveries pile up at once: a thread each would be several times the bound."""
DELIVERY_THREADS = 4
SLACK = 16
"""Threads the server may start for the burst's requests besides delivery (its thread pools
grow on demand); far fewer than one per job."""


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def test_a_burst_of_finished_jobs_is_delivered_once_each_by_a_bounded_pool(make_server) -> None:
    srv = make_server(
        DOCJOBS_RATE_LIMITS__ENABLED="false",
        DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS="true",
        DOCJOBS_WEBHOOKS__MAX_PARALLEL_DELIVERIES=str(DELIVERY_THREADS),
        DOCJOBS_WEBHOOKS__TIMEOUT_SECONDS="300",
    ).start()
    assert srv.process is not None
    pid = srv.process.pid
    session = requests.Session()
    session.headers["x-api-key"] = srv.key("burst")
    open_gate = threading.Event()
    open_gate.set()

    def reply(_: Recorded) -> Reply:
        # The receiver holds every request until the burst has ended: deliveries pile up.
        assert open_gate.wait(300)
        return (200, {}, b"{}")

    def submit(n: int) -> str:
        # Each its own content: the same document from the same tenant is one job.
        response = session.post(
            f"{srv.base}/api/v1/convert/text-to-pdf?async=true", data={"content": f"burst {n}"}
        )
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    def ended() -> int:
        total = 0
        for word in ("complete", "failed", "cancelled"):
            listed = session.get(f"{srv.base}/api/v1/jobs", params={"status": word, "limit": 1})
            total += int(listed.json()["total"])
        return total

    with serve(reply) as receiver:
        created = session.post(f"{srv.base}/v1/webhooks", json={"url": receiver.url})
        assert created.status_code == 201, created.text
        submit(-1)  # one job through, delivery included: the server's threads are all started
        receiver.wait_for(1)
        open_gate.clear()
        idle = threads_of(pid)

        job_ids = {submit(n) for n in range(BURST)}
        most = idle
        deadline = time.monotonic() + 300
        while ended() < BURST + 1:
            assert time.monotonic() < deadline, f"{ended()} of {BURST + 1} jobs ended"
            most = max(most, threads_of(pid))
            time.sleep(0.2)
        most = max(most, threads_of(pid))
        held = len(receiver.received) - 1
        open_gate.set()
        receiver.wait_for(BURST + 1, timeout=120)
        time.sleep(1)  # nothing more comes

    assert held == DELIVERY_THREADS
    assert most <= idle + SLACK, f"{idle} threads idle, {most} during the burst"
    events = [record.json() for record in receiver.received[1:]]
    assert len(events) == BURST
    assert {event["data"]["jobId"] for event in events} == job_ids
    ids = Counter(record.headers["webhook-id"] for record in receiver.received)
    assert max(ids.values()) == 1
