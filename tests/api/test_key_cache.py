"""Verified keys are remembered for ``DOCJOBS_KEY_CACHE_SECONDS``: a key revoked by the
command line (another process) stops working within that time, on reads and uploads alike."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.conftest import BIN, Server

CACHE_SECONDS = 1.0
SLACK_SECONDS = 5.0
"""Time for the command's write to be seen on a busy machine, on top of the bound."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("key-cache") / "data",
        env={"DOCJOBS_KEY_CACHE_SECONDS": str(CACHE_SECONDS)},
    ).start()
    yield srv
    srv.stop()


def revoke(server: Server, key: str) -> None:
    key_id = key.split("_")[1]
    subprocess.run(
        [str(BIN / "docjobs"), "keys", "revoke", key_id, "--data-dir", str(server.data_dir)],
        check=True,
        capture_output=True,
    )


def status_until_refused(send: Callable[[], requests.Response], deadline: float) -> int:
    """The last status ``send`` got, asking until 401 or ``deadline``."""
    status = 0
    while time.monotonic() < deadline:
        status = send().status_code
        if status == 401:
            break
        time.sleep(0.05)
    return status


def test_a_revoked_key_stops_reading_within_the_cache_time(server: Server) -> None:
    key = server.key("reader")
    jobs = f"{server.base}/api/v1/jobs"
    for _ in range(3):  # verified once, then answered from memory
        assert requests.get(jobs, headers={"X-API-Key": key}, timeout=10).status_code == 200

    revoke(server, key)
    deadline = time.monotonic() + CACHE_SECONDS + SLACK_SECONDS
    status = status_until_refused(
        lambda: requests.get(jobs, headers={"X-API-Key": key}, timeout=10), deadline
    )

    assert status == 401
    answer = requests.get(jobs, headers={"X-API-Key": key}, timeout=10)
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_a_revoked_key_stops_uploading_within_the_cache_time(server: Server) -> None:
    key = server.key("uploader")
    convert = f"{server.base}/api/v1/convert/html-to-pdf?async=true"

    def submit() -> requests.Response:
        return requests.post(
            convert, headers={"X-API-Key": key}, data={"content": "<p>hi</p>"}, timeout=30
        )

    assert submit().status_code == 202
    revoke(server, key)
    deadline = time.monotonic() + CACHE_SECONDS + SLACK_SECONDS

    assert status_until_refused(submit, deadline) == 401


def test_other_keys_keep_working_after_one_is_revoked(server: Server) -> None:
    kept, revoked = server.key("kept"), server.key("gone")
    jobs = f"{server.base}/api/v1/jobs"
    revoke(server, revoked)
    time.sleep(CACHE_SECONDS)

    assert requests.get(jobs, headers={"X-API-Key": revoked}, timeout=10).status_code == 401
    assert requests.get(jobs, headers={"X-API-Key": kept}, timeout=10).status_code == 200
