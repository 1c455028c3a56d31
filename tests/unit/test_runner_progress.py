"""A one-shot runner's progress: the engine counts the pages it has read, and the runner
stores the count where the operator reads it, at most about once a second and at the end."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from docjobs.domain.models import EXIT_OK, InputRef, JobSpec, OcrSimple
from docjobs.runner.engines import tesseract
from docjobs.runner.execute import execute
from docjobs.runner.progress import StoredProgress
from docjobs.storage.base import ObjectNotFound, progress_key
from docjobs.storage.local import LocalStore
from tests.docs import pdf_with_pages

JOB_ID = "job_" + "p" * 24


def _stored(store: LocalStore, key: str) -> dict[str, int] | None:
    try:
        found: dict[str, int] = json.loads(b"".join(store.iter_chunks(key)))
    except ObjectNotFound:
        return None
    return found


def test_tesseract_counts_each_page_it_reads_of_the_selection(tmp_path: Path) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(pdf_with_pages(4, seed=3)[0])
    told: list[tuple[int, int]] = []
    operation = OcrSimple(pages="2-4")
    pages = tesseract.read_pages(operation, source, "application/pdf", lambda *c: told.append(c))
    assert [page["page"] for page in pages] == [2, 3, 4]
    assert told == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_counts_are_stored_at_most_once_an_interval_and_always_at_the_end(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "objects")
    now = [0.0]
    progress = StoredProgress(store, "acme/p.json", interval=1.0, clock=lambda: now[0])
    seen = []
    for done, at in [(0, 0.0), (1, 0.4), (2, 0.9), (3, 1.2), (4, 1.5), (5, 1.6)]:
        now[0] = at
        progress(done, 5)
        seen.append(_stored(store, "acme/p.json"))
    shown = [None if s is None else (s["pagesDone"], s["pagesTotal"]) for s in seen]
    # The first count at once; 1 and 2 within the second; 3 a second after 0; 4 within
    # the next second; 5 is the end, stored whenever it comes.
    assert shown == [(0, 5), (0, 5), (0, 5), (3, 5), (3, 5), (5, 5)]


def test_a_one_shot_attempt_leaves_its_last_count_and_a_worker_none(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    store.put_bytes("acme/scan.pdf", pdf_with_pages(2, seed=7)[0], "application/pdf")
    scan = {"file_name": "scan.pdf", "content_type": "application/pdf", "page_count": 2}
    spec = JobSpec(
        job_id=JOB_ID,
        tenant="acme",
        operation={"kind": "ocr.simple"},
        input=InputRef(key="acme/scan.pdf", sha256="0", size=1, **scan),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert execute(spec, 1, store).exit_code == EXIT_OK
    assert _stored(store, progress_key("acme", JOB_ID, 1)) is None
    assert execute(spec, 2, store, report_progress=True).exit_code == EXIT_OK
    assert _stored(store, progress_key("acme", JOB_ID, 2)) == {"pagesDone": 2, "pagesTotal": 2}
