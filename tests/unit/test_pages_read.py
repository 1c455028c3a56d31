"""A job's page count reads the same in both route families, at every phase."""

from __future__ import annotations

from datetime import UTC, datetime

from docjobs.domain.events import job_view, pages_read
from docjobs.domain.models import InputRef, Job, JobError, JobSpec, JobStatus, OcrSimple, Phase


def job(pages: str | None, total: int, counted: int | None, phase: Phase) -> Job:
    spec = JobSpec(
        tenant="t",
        job_id="job_pages",
        operation=OcrSimple(pages=pages),
        input=InputRef(
            key="t/job_pages/input",
            file_name="scan.pdf",
            content_type="application/pdf",
            sha256="0" * 64,
            size=1,
            page_count=total,
        ),
        created_at=datetime.now(UTC),
    )
    return Job(spec=spec, status=JobStatus(phase=phase, page_count=counted))


def test_a_page_selection_counts_while_processing_as_at_the_end() -> None:
    running = job("1-8", 30, None, Phase.PROCESSING)
    done = job("1-8", 30, 8, Phase.COMPLETE)
    assert pages_read(running) == pages_read(done) == 8
    assert pages_read(job("2-3,3,5", 30, None, Phase.PENDING)) == 3


def test_a_failed_job_shows_the_uploads_pages_in_the_parse_view_too() -> None:
    failed = job(None, 25, None, Phase.FAILED)
    assert job_view(failed)["pageCount"] == pages_read(failed) == 25


def test_a_failed_job_names_its_code_in_the_parse_view() -> None:
    failed = job(None, 25, None, Phase.FAILED).model_copy(
        update={
            "status": JobStatus(
                phase=Phase.FAILED,
                error=JobError(reason="TooManyPages", message="too long", permanent=True),
            )
        }
    )
    view = job_view(failed)
    assert (view["error"], view["errorCode"]) == ("too long", "too_many_pages")
    assert job_view(job(None, 25, None, Phase.PROCESSING))["errorCode"] is None
