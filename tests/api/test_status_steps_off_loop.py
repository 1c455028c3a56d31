"""Embedded mode: the job supervisor writes statuses off the event loop, so a status write
waiting for another process's database lock holds up that job only, never the server."""

from __future__ import annotations

import time

from tests.probes import health_latencies, held_up
from tests.rig.fixtures import wait_for

from .test_database_contention import BUSY_TIMEOUT, convert, status, write_lock

LOCK_SECONDS = BUSY_TIMEOUT - 2
"""Held for less than the busy timeout: the waiting write then goes through."""


def test_a_status_write_waiting_for_the_lock_holds_up_no_request(make_server) -> None:
    server = make_server().start()
    key = server.key("acme")
    accepted = convert(server, key, "its status is written while the lock is held")
    assert accepted.status_code == 202
    url = accepted.json()["status_url"]

    with write_lock(server.data_dir / "docjobs.db"):
        locked = time.monotonic()
        latencies = health_latencies(server.base, lambda: time.monotonic() - locked < LOCK_SECONDS)
        during = status(url, key)

    # The job's start or end was due meanwhile and waited for the lock in its thread.
    assert during != "complete"
    assert len(latencies) >= 20
    assert not held_up(latencies), latencies
    wait_for(lambda: status(url, key) == "complete", 60, 0.1)
