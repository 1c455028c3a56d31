"""Usage counts the runner CPU time of every attempt of a job in embedded mode: a retried
job's failed attempt, a job that failed for good, and the parts of an attempt read by
several workers at once (their merge reports theirs with its own)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from docjobs.api.app import create_app
from docjobs.domain.models import Job
from docjobs.usage.records import CPU_SECONDS, UsageRecord
from tests.api.conftest import InProcessApi, app_settings, running
from tests.api.test_usage import claude  # noqa: F401  (the Claude stand-in: a fixture)
from tests.docs import INVOICE_TEMPLATE, invoice_pdf, pdf_with_pages
from tests.receivers import LocalServer


async def _ended(api: InProcessApi, tenant: str, path: str, **kwargs: Any) -> Job:
    key = api.key(tenant)
    response = await api.post(key, path, **kwargs)
    assert response.status_code == 202, response.text
    body = response.json()
    job_id = str(body.get("job_id") or body.get("jobId"))
    await api.wait_for(key, job_id)
    job = await api.app.state.backend.get(tenant, job_id)
    assert job is not None
    return job


async def _record(api: InProcessApi, job: Job) -> UsageRecord:
    today = datetime.now(UTC).date()
    records = await api.app.state.backend.usage(
        job.spec.tenant, today - timedelta(days=1), today + timedelta(days=1)
    )
    (record,) = [record for record in records if record.job_id == job.spec.job_id]
    return record


@pytest.mark.anyio
async def test_failed_attempts_count_their_cpu_time(
    tmp_path: Path,
    claude: LocalServer,  # noqa: F811
) -> None:
    settings = app_settings(
        tmp_path / "data",
        llm={"base_url": claude.url, "api_key": "standin-key"},
        jobs={"retry": {"initial_backoff_seconds": 0.1}},
    )
    async with running(create_app(settings)) as api:
        made = await api.post(
            api.key("cpu-attempts"), "/v1/templates", json={**INVOICE_TEMPLATE, "engine": "llm"}
        )
        template = made.json()["templateId"]

        async def parse(number: str) -> Job:
            invoice = invoice_pdf(number=number)
            return await _ended(
                api,
                "cpu-attempts",
                "/v1/documents/parse/async",
                files={"file": ("invoice.pdf", invoice, "application/pdf")},
                data={"templateId": template},
            )

        retried = await parse("INV-RETRY-CPU")
        failed = await parse("INV-BAD-CPU")
        retried_usage, failed_usage = await _record(api, retried), await _record(api, failed)

    assert retried.status.phase == "Complete" and retried.status.attempts == 2
    completing = retried.status.details[CPU_SECONDS]
    assert completing > 0
    # The attempt Claude turned away read the document and asked too: it is billed as well.
    assert retried_usage.cpu_seconds > completing
    assert retried_usage.cpu_seconds == retried.status.cpu_seconds

    assert failed.status.phase == "Failed" and failed.status.attempts == 1
    assert failed.status.error is not None and failed.status.error.permanent
    assert failed_usage.status == "failed" and failed_usage.page_total == 0
    assert failed_usage.cpu_seconds > 0


@pytest.mark.anyio
async def test_an_attempt_read_in_parts_counts_every_part(tmp_path: Path) -> None:
    settings = app_settings(tmp_path / "data", runner={"concurrency": 2, "part_pages": 1})
    async with running(create_app(settings)) as api:
        document, _ = pdf_with_pages(3, seed=7)
        job = await _ended(
            api,
            "cpu-parts",
            "/api/v1/ocr/extract/simple?async=true",
            files={"file": ("scan.pdf", document, "application/pdf")},
        )
        usage = await _record(api, job)
        objects = settings.data_dir / "objects" / job.spec.tenant / job.spec.job_id
        kept = sorted((objects / "attempts" / "1").glob("part-*.cpu"))
        parts = [float(path.read_text()) for path in kept]

    assert job.status.phase == "Complete" and job.status.page_count == 3
    # Each part was read on a worker of its own and is billed with the merge.
    assert len(parts) == 3 and all(seconds > 0 for seconds in parts)
    assert usage.cpu_seconds > sum(parts)
    assert usage.cpu_seconds == job.status.cpu_seconds == job.status.details[CPU_SECONDS]
