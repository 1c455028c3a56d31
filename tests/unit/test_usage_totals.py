"""Usage records of finished jobs and their totals: pages split by the tiers that read them
(the runner's ``pages_by_tier``), and every grouping sums to the same totals."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

from docjobs.domain.models import InputRef, Job, JobSpec, JobStatus, OcrSimple, Phase
from docjobs.usage.objects import record_of_key, usage_key
from docjobs.usage.records import usage_of
from docjobs.usage.totals import GROUPS, summarize, usage_csv

ENDED = datetime(2026, 3, 31, 23, 59, tzinfo=UTC)


def _job(n: int, phase: Phase, pages: int | None, **details: object) -> Job:
    spec = JobSpec(
        job_id=f"job_{n:024x}",
        tenant="acme" if n % 2 else "globex",
        operation=OcrSimple(),
        input=InputRef(
            key="k",
            file_name="f.pdf",
            content_type="application/pdf",
            sha256="0",
            size=1000 + n,
            page_count=pages,
        ),
        created_at=ENDED,
    )
    status = JobStatus(phase=phase, completed_at=ENDED, page_count=pages, details=details)
    return Job(spec=spec, status=status)


def test_pages_go_to_the_tiers_that_read_them_and_groupings_agree() -> None:
    records = [
        usage_of(_job(1, Phase.COMPLETE, 5, pages_by_tier={"tesseract": 3, "vision": 2})),
        usage_of(_job(3, Phase.COMPLETE, 4, cpu_seconds=1.5)),
        usage_of(_job(5, Phase.FAILED, 7)),
    ]
    assert records[0].day == date(2026, 3, 31)
    assert dict(records[0].pages) == {"tesseract": 3, "vision": 2}
    assert dict(records[1].pages) == {"tesseract": 4} and records[1].cpu_seconds == 1.5
    assert dict(records[2].pages) == {} and records[2].status == "failed"

    totals, _ = summarize(records)
    assert (totals.jobs, totals.complete, totals.failed, totals.pages) == (3, 2, 1, 9)
    assert totals.pages_by_tier == {"tesseract": 7, "vision": 2}
    assert totals.input_bytes == 1001 + 1003 + 1005
    for grouping in ([], ["tier"], ["status"], list(GROUPS)):
        _, groups = summarize(records, grouping)
        assert sum(g.totals.jobs for g in groups) == (3 if grouping else 0)
        assert sum(g.totals.pages for g in groups) == (9 if grouping else 0)
    _, by_tier = summarize(records, ["tier"])
    vision = next(g for g in by_tier if g.tier == "vision")
    assert vision.totals.jobs == 0 and vision.totals.pages == 2  # read pages of a tesseract job


def test_a_record_survives_its_object_name() -> None:
    record = usage_of(
        _job(1, Phase.COMPLETE, 5, pages_by_tier={"tesseract": 3, "doctr": 2}, cpu_seconds=0.125)
    )
    assert record_of_key(usage_key(record, "docjobs")) == record


def test_the_csv_has_a_row_per_tenant_and_group() -> None:
    jobs = [_job(1, Phase.COMPLETE, 2), _job(2, Phase.COMPLETE, 3), _job(4, Phase.CANCELLED, 1)]
    rows = list(csv.DictReader(io.StringIO(usage_csv(usage_of(job) for job in jobs))))
    assert [(r["tenant"], r["status"], r["jobs"], r["pages"]) for r in rows] == [
        ("acme", "complete", "1", "2"),
        ("globex", "cancelled", "1", "0"),
        ("globex", "complete", "1", "3"),
    ]
