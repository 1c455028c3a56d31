"""Embedded mode while another process holds the database's write lock (a ``docjobs keys``
command, a backup, an admin's sqlite3 shell): only requests that write wait for it, and one
that waits longer than SQLite's busy timeout answers 503 with ``Retry-After``, never 500."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.conftest import Server
from tests.probes import health_latencies, held_up
from tests.rig.fixtures import wait_for

BUSY_TIMEOUT = 5.0
"""Seconds the embedded database waits for a lock before giving up (its busy_timeout)."""


@contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """Another connection's exclusive write transaction; readers still read (WAL)."""
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def status(url: str, key: str) -> str:
    word: str = requests.get(url, headers={"X-API-Key": key}, timeout=10).json()["status"]
    return word


def convert(server: Server, key: str, text: str) -> requests.Response:
    return requests.post(
        f"{server.base}/api/v1/convert/text-to-pdf?async=true",
        headers={"X-API-Key": key},
        data={"content": text},
        timeout=60,
    )


def test_a_write_lock_holds_up_only_the_requests_that_write(make_server) -> None:
    server = make_server().start()
    key = server.key("acme")
    before = convert(server, key, "before the lock")
    assert before.status_code == 202
    # Finished first, so that the submission is the one write waiting for the lock (a
    # status write waiting meanwhile: test_status_steps_off_loop.py).
    wait_for(lambda: status(before.json()["status_url"], key) == "complete", 60, 0.1)

    with write_lock(server.data_dir / "docjobs.db"), ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        pending = pool.submit(convert, server, key, "while the lock is held")
        listed = requests.get(f"{server.base}/api/v1/jobs", headers={"X-API-Key": key})
        latencies = health_latencies(server.base, lambda: not pending.done())
        answer = pending.result()
        took = time.monotonic() - started

    # Reading needs no lock: the list answered while the submission waited.
    assert listed.status_code == 200 and listed.json()["total"] == 1
    assert took >= BUSY_TIMEOUT - 0.5, "the submission did not wait for the lock"
    assert len(latencies) >= 20
    assert not held_up(latencies), latencies
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    error = answer.json()["error"]
    assert error["code"] == "dependency_unavailable"
    assert "database is unavailable (database is locked)" in error["message"]

    assert convert(server, key, "after the lock").status_code == 202
    assert requests.get(f"{server.base}/readyz").json()["status"] == "ready"
