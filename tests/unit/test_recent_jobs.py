"""Jobs kept in memory for pollers (embedded mode) are never older than the database: every
write of a job forgets it, and a read that raced a write is not kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.jobs import SQLiteJobStore
from docjobs.backends.embedded.recent import RecentJobs
from docjobs.domain.models import JobStatus, Phase, Progress
from tests.unit.test_fairshare import job


def store_with_job(tmp_path: Path) -> SQLiteJobStore:
    store = SQLiteJobStore(SQLiteDatabase(tmp_path / "docjobs.db"))
    store.create(job("acme", 1).spec)
    return store


def test_a_polled_job_is_served_from_memory_until_it_changes(tmp_path: Path) -> None:
    store = store_with_job(tmp_path)
    read = store.read("acme_1")
    assert read is not None and store.recent.get("acme_1") is read

    store.save_status("acme_1", JobStatus(phase=Phase.PROCESSING, attempts=1))
    assert store.recent.get("acme_1") is None
    changed = store.read("acme_1")
    assert changed is not None and changed.status.phase is Phase.PROCESSING

    store.save_progress("acme_1", Progress(pages_done=1, pages_total=4))
    again = store.read("acme_1")
    assert again is not None and again.status.progress is not None
    assert again.status.progress.pages_done == 1
    store.request_cancel("acme_1")
    cancelled = store.read("acme_1")
    assert cancelled is not None and cancelled.cancel_requested
    store.mark_expired("acme_1")
    expired = store.read("acme_1")
    assert expired is not None and expired.expired


def test_a_read_that_raced_a_write_is_not_kept(tmp_path: Path) -> None:
    store = store_with_job(tmp_path)
    mark = store.recent.mark()
    before = store.get("acme_1")  # read, then a write commits before it is kept
    store.save_status("acme_1", JobStatus(phase=Phase.PROCESSING, attempts=1))
    assert before is not None
    store.recent.keep(before, mark)
    assert store.recent.get("acme_1") is None


def test_the_least_recently_read_jobs_go_first() -> None:
    recent = RecentJobs(max_entries=2)
    first, second, third = (job("acme", n) for n in range(3))
    for kept in (first, second):
        recent.keep(kept, recent.mark())
    assert recent.get("acme_0") is first  # now read more recently than acme_1
    recent.keep(third, recent.mark())
    assert recent.get("acme_1") is None
    assert recent.get("acme_0") is first and recent.get("acme_2") is third


def test_a_status_written_with_its_spec_is_served_as_written(tmp_path: Path) -> None:
    store = store_with_job(tmp_path)
    store.request_cancel("acme_1")
    spec = job("acme", 1).spec
    store.save_status("acme_1", JobStatus(phase=Phase.PROCESSING, attempts=1), spec=spec)
    kept = store.recent.get("acme_1")
    assert kept is not None and kept.status.phase is Phase.PROCESSING
    assert kept.cancel_requested  # the columns as the write found them, not as assumed
    assert kept == store.get("acme_1")


def test_a_written_job_is_not_kept_when_another_write_finished_meanwhile(
    tmp_path: Path,
) -> None:
    store = store_with_job(tmp_path)
    spec = job("acme", 1).spec

    store.save_status("acme_1", JobStatus(phase=Phase.PROCESSING, attempts=1), spec=spec)
    assert store.recent.get("acme_1") is not None
    mark = store.recent.mark()
    store.recent.forget("acme_2")  # any write finishing after the mark
    written = store.recent.get("acme_1")
    assert written is not None
    store.recent.written(written.model_copy(update={"expired": True}), mark)
    assert store.recent.get("acme_1") is None


def test_a_failed_status_write_keeps_nothing(tmp_path: Path) -> None:
    store = store_with_job(tmp_path)
    assert store.read("acme_1") is not None

    def fail(conn: object) -> None:
        raise RuntimeError("disk full")

    spec = job("acme", 1).spec
    with pytest.raises(RuntimeError):
        store.save_status("acme_1", JobStatus(phase=Phase.PROCESSING, attempts=1), fail, spec=spec)
    assert store.recent.get("acme_1") is None
    stored = store.get("acme_1")
    assert stored is not None and stored.status.phase is Phase.PENDING
