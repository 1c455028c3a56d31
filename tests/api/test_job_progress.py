"""A job's progress in pages, in both API families and as Server-Sent Events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests

from tests.api.test_page_parallel import submit
from tests.conftest import Server
from tests.docs import pdf_with_pages

PAGES = 6
"""Three parts of two pages on two workers: a part ends while others are still read."""
TERMINAL = {"complete", "failed", "cancelled"}


@pytest.fixture(scope="module")
def paged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose 2 workers read parts of 2 pages; its tests keep apart by tenant."""
    env = {"DOCJOBS_RUNNER__CONCURRENCY": "2", "DOCJOBS_RUNNER__PART_PAGES": "2"}
    srv = Server(tmp_path_factory.mktemp("paged") / "data", env=env).start()
    yield srv
    srv.stop()


def paged_job(srv: Server, tenant: str) -> tuple[str, str]:
    """A key of ``tenant`` and the job of a ``PAGES`` scan it sent."""
    key = srv.key(tenant)
    document, _ = pdf_with_pages(PAGES, seed=PAGES + 3)
    return key, submit(srv, key, "scan.pdf", document, "application/pdf")


def follow_progress(
    srv, key: str, job_id: str, pages: int, each: Callable[[], None] = lambda: None
) -> None:
    """Poll the job in both API families until it ends (``each`` after every look) and
    check that its progress rose, never back, through some pages to all ``pages``."""
    headers = {"X-API-Key": key}
    jobs_api: list[tuple[int, int]] = []
    parse_api: list[tuple[int, int]] = []
    deadline = time.monotonic() + 300
    while True:
        detail = requests.get(f"{srv.base}/api/v1/jobs/{job_id}", headers=headers).json()
        parsed = requests.get(f"{srv.base}/v1/jobs/{job_id}", headers=headers).json()
        if progress := detail.get("progress"):
            jobs_api.append((progress["pages_done"], progress["pages_total"]))
        if progress := parsed["progress"]:
            parse_api.append((progress["pagesDone"], progress["pagesTotal"]))
        each()
        if detail["status"] in TERMINAL:
            break
        assert time.monotonic() < deadline, detail
        time.sleep(0.05)

    assert detail["status"] == "complete", detail
    for seen in (jobs_api, parse_api):
        assert seen == sorted(seen), f"progress went back: {seen}"
        assert {total for _, total in seen} == {pages}
        assert seen[-1] == (pages, pages)
    assert any(0 < done < pages for done, _ in jobs_api), f"no page-by-page progress: {jobs_api}"


def test_progress_rises_to_every_page_in_both_api_families(paged: Server) -> None:
    key, job_id = paged_job(paged, "progress")
    follow_progress(paged, key, job_id, PAGES)


@dataclass(frozen=True)
class Event:
    id: str
    name: str
    data: dict[str, Any]

    @property
    def revision(self) -> tuple[int, ...]:
        return tuple(map(int, self.id.split(".")))


def events(srv, key: str, job_id: str, last_id: str | None = None) -> Iterator[Event]:
    """The job's event stream, event by event, until the server ends it."""
    headers = {"X-API-Key": key, **({"Last-Event-ID": last_id} if last_id else {})}
    url = f"{srv.base}/api/v1/jobs/{job_id}/events"
    with httpx.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if fields:
                yield Event(fields["id"], fields["event"], json.loads(fields["data"]))
                fields = {}


def test_events_follow_the_job_to_its_end_and_resume_after_the_last_seen(paged: Server) -> None:
    srv = paged
    key, job_id = paged_job(srv, "events")

    stranger = httpx.get(
        f"{srv.base}/api/v1/jobs/{job_id}/events", headers={"X-API-Key": srv.key("stranger")}
    )
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "job_not_found"

    first = next(events(srv, key, job_id))  # then the connection drops
    assert first.name == "status" and first.data["status"] in {"pending", "processing"}
    time.sleep(1)
    rest = list(events(srv, key, job_id, last_id=first.id))  # ends by itself

    seen = [first, *rest]
    revisions = [event.revision for event in seen]
    assert revisions == sorted(set(revisions)), "events out of order or repeated"
    assert [event.name for event in seen].count("end") == 1 and seen[-1].name == "end"
    end = seen[-1].data
    assert end["status"] == "complete"
    assert end["progress"] == {"pages_done": PAGES, "pages_total": PAGES}
    assert end["result_url"].endswith(f"/api/v1/jobs/{job_id}/result")
    assert requests.get(end["result_url"], headers={"X-API-Key": key}).status_code == 200
    # The job may have ended while the client was away: a resume then starts at the job as it
    # stands, so progress events are optional here (the test above follows them throughout).
    progress = [e.data["progress"]["pages_done"] for e in seen if e.name == "progress"]
    assert progress == sorted(progress)

    # Resuming at the end there is nothing more; a new follower gets the end at once.
    assert list(events(srv, key, job_id, last_id=seen[-1].id)) == []
    assert [event.name for event in events(srv, key, job_id)] == ["end"]
