"""A job's event stream, at its edges: a tenant holds a bounded number of streams open
(429 past it, other tenants unaffected, room again once one closes), and a client that
resumes with an id beyond the job's last event still gets the ``end`` event."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import httpx
import pytest
import requests

from tests.conftest import Server

STREAMS_PER_TENANT = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # No runner worker: jobs stay pending until cancelled, their streams open meanwhile.
    srv = Server(
        tmp_path_factory.mktemp("event-streams") / "data",
        env={
            "DOCJOBS_RUNNER__CONCURRENCY": "0",
            "DOCJOBS_SERVER__MAX_EVENT_STREAMS_PER_TENANT": str(STREAMS_PER_TENANT),
        },
    ).start()
    yield srv
    srv.stop()


def queue_job(server: Server, key: str, text: str) -> str:
    answer = requests.post(
        f"{server.base}/api/v1/convert/text-to-pdf?async=true",
        headers={"X-API-Key": key},
        data={"content": text},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["job_id"])


@dataclass
class Stream:
    answer: httpx.Response
    lines: Iterator[str]
    """The answer's lines, one iterator for its life: dropping one closes the connection."""


def next_event(opened: Stream) -> dict[str, str]:
    """The next event of an open stream, as its fields."""
    assert opened.answer.status_code == 200, opened.answer.read()
    fields: dict[str, str] = {}
    for line in opened.lines:
        if line.startswith(":"):
            continue
        if not line and fields:
            return fields
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
    raise AssertionError(f"the stream ended without an event: {fields}")


@contextmanager
def stream(server: Server, key: str, job_id: str, **headers: str) -> Iterator[Stream]:
    url = f"{server.base}/api/v1/jobs/{job_id}/events"
    with httpx.stream("GET", url, headers={"X-API-Key": key, **headers}, timeout=30) as answer:
        yield Stream(answer, answer.iter_lines())


def events_to_the_end(server: Server, key: str, job_id: str, **headers: str) -> list[str]:
    """The names of the events of the job's stream, until the server ends it."""
    with stream(server, key, job_id, **headers) as opened:
        assert opened.answer.status_code == 200, opened.answer.read()
        return [line.removeprefix("event: ") for line in opened.lines if line.startswith("event: ")]


def test_a_tenant_holds_a_bounded_number_of_streams(server: Server) -> None:
    key = server.key("watcher")
    job_id = queue_job(server, key, "watched")
    with ExitStack() as closing:
        held = [
            closing.enter_context(stream(server, key, job_id)) for _ in range(STREAMS_PER_TENANT)
        ]
        assert [next_event(opened)["event"] for opened in held] == ["status"] * len(held)

        refused = requests.get(
            f"{server.base}/api/v1/jobs/{job_id}/events", headers={"X-API-Key": key}, timeout=10
        )
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert error["code"] == "too_many_event_streams"
        assert f"ceiling of {STREAMS_PER_TENANT}" in error["message"]
        assert "DOCJOBS_SERVER__MAX_EVENT_STREAMS_PER_TENANT" in error["message"]
        assert int(refused.headers["Retry-After"]) >= 1
        # Reads of the job are not held up, nor another tenant's streams.
        polled = requests.get(
            f"{server.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}, timeout=10
        )
        assert polled.status_code == 200
        neighbour = server.key("neighbour")
        neighbour_job = queue_job(server, neighbour, "theirs")
        with stream(server, neighbour, neighbour_job) as theirs:
            assert next_event(theirs)["event"] == "status"

    # The streams are closed: the tenant has room again.
    deadline = time.monotonic() + 10
    while True:
        with stream(server, key, job_id) as again:
            if again.answer.status_code == 200:
                assert next_event(again)["event"] == "status"
                break
        assert time.monotonic() < deadline, "the closed streams were never given back"
        time.sleep(0.2)


def test_resuming_beyond_the_last_event_still_ends_with_the_end_event(server: Server) -> None:
    key = server.key("resumer")
    job_id = queue_job(server, key, "to cancel")
    cancelled = requests.delete(
        f"{server.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key}, timeout=10
    )
    assert cancelled.status_code == 204, cancelled.text

    with stream(server, key, job_id) as opened:
        end = next_event(opened)
    assert end["event"] == "end"
    assert json.loads(end["data"])["status"] == "cancelled"

    attempts, stage, pages = map(int, end["id"].split("."))
    for beyond in (f"{attempts}.{stage}.{pages + 5}", f"{attempts + 3}.0.0", "999999999.9.0"):
        assert events_to_the_end(server, key, job_id, **{"Last-Event-ID": beyond}) == ["end"]
    # A client that saw the end itself has nothing more to get.
    assert events_to_the_end(server, key, job_id, **{"Last-Event-ID": end["id"]}) == []
    # Streams that ended are given back: more than the ceiling of them, one after another.
    for _ in range(STREAMS_PER_TENANT + 1):
        assert events_to_the_end(server, key, job_id) == ["end"]
