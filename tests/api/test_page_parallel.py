"""A multi-page OCR job is read by several workers at once, and no other job waits on it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from docjobs.domain.models import OcrSimple
from docjobs.runner import engines
from tests.conftest import Server
from tests.docs import pdf_with_pages, png_bytes, sentence_lines, text_image


def submit(srv, key, name, payload, content_type, **form: str) -> str:
    response = requests.post(
        f"{srv.base}/api/v1/ocr/extract/simple?async=true",
        headers={"X-API-Key": key},
        files={"file": (name, payload, content_type)},
        data=form,
        timeout=60,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def status(srv, key, job_id) -> str:
    response = requests.get(f"{srv.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key})
    return str(response.json()["status"])


def wait_done(srv, key, job_id, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while (seen := status(srv, key, job_id)) not in {"complete", "failed", "cancelled"}:
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
    assert seen == "complete", seen


@pytest.fixture(scope="module")
def in_parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose 2 workers read parts of 2 pages; its tests keep apart by tenant."""
    env = {"DOCJOBS_RUNNER__CONCURRENCY": "2", "DOCJOBS_RUNNER__PART_PAGES": "2"}
    srv = Server(tmp_path_factory.mktemp("parts") / "data", env=env).start()
    yield srv
    srv.stop()


def reading_in_parts(srv: Server, tenant: str, pages: int) -> tuple[str, str]:
    """A key of ``tenant`` and its job of a ``pages`` scan on ``srv``, once the job's first
    part is stored."""
    key = srv.key(tenant)
    document, _ = pdf_with_pages(pages, seed=pages)
    job_id = submit(srv, key, "scan.pdf", document, "application/pdf")
    parts = srv.data_dir / "objects" / tenant / job_id / "attempts" / "1"
    deadline = time.monotonic() + 60
    while not list(parts.glob("part-*.json")):
        assert time.monotonic() < deadline, "no part was read"
        time.sleep(0.05)
    return key, job_id


def test_parts_read_apart_merge_into_the_one_worker_result(
    in_parts: Server, tmp_path: Path
) -> None:
    srv = in_parts
    key = srv.key("paged")
    document, _ = pdf_with_pages(5, seed=40)
    job_id = submit(srv, key, "scan.pdf", document, "application/pdf", output="detailed")
    wait_done(srv, key, job_id)
    result = requests.get(
        f"{srv.base}/api/v1/jobs/{job_id}/result", headers={"X-API-Key": key}, timeout=60
    ).json()

    source = tmp_path / "scan.pdf"
    source.write_bytes(document)
    alone = engines.run(OcrSimple(output="detailed"), source, "application/pdf", workdir=tmp_path)
    assert result == json.loads(alone.path.read_bytes())
    assert [page["page"] for page in result["data"]["pages"]] == list(range(1, 6))
    parts = sorted(srv.data_dir.glob(f"objects/paged/{job_id}/attempts/1/part-*.json"))
    assert len(parts) == 3, "the document was not read in parts"


def test_a_small_job_does_not_wait_for_a_large_one(make_server) -> None:
    srv = make_server(DOCJOBS_RUNNER__CONCURRENCY="2", DOCJOBS_RUNNER__PART_PAGES="1").start()
    key = srv.key("fair")
    large, _ = pdf_with_pages(10, seed=70)
    small = png_bytes(text_image(sentence_lines(7, 3), size=32))
    large_id = submit(srv, key, "large.pdf", large, "application/pdf")
    deadline = time.monotonic() + 60
    while status(srv, key, large_id) != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # its parts now hold both workers
    small_id = submit(srv, key, "small.png", small, "image/png")

    wait_done(srv, key, small_id)

    assert status(srv, key, large_id) == "processing", "the small job waited for the large one"
    wait_done(srv, key, large_id)


def test_cancel_stops_every_part(in_parts: Server) -> None:
    srv = in_parts
    key, job_id = reading_in_parts(srv, "halt", pages=30)
    parts = srv.data_dir / "objects" / "halt" / job_id / "attempts" / "1"

    cancel = requests.delete(f"{srv.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": key})
    assert cancel.status_code == 204
    time.sleep(0.5)
    read = len(list(parts.glob("part-*.json")))

    time.sleep(3)
    assert status(srv, key, job_id) == "cancelled"
    assert len(list(parts.glob("part-*.json"))) == read < 15, "parts went on after cancel"
    small = png_bytes(text_image(sentence_lines(9, 3), size=32))
    wait_done(srv, key, submit(srv, key, "after.png", small, "image/png"), timeout=60)


def test_a_paged_job_cut_by_kill_9_completes_with_every_page_once(in_parts: Server) -> None:
    srv = in_parts
    key, job_id = reading_in_parts(srv, "crash", pages=8)

    srv.kill()
    srv.start()

    wait_done(srv, key, job_id)
    result = requests.get(
        f"{srv.base}/api/v1/jobs/{job_id}/result", headers={"X-API-Key": key}, timeout=60
    ).json()
    assert [page["page"] for page in result["data"]["pages"]] == list(range(1, 9))
