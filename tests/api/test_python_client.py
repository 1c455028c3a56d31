"""``docjobs.client`` against a real embedded server: every method, both clients."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from docjobs.client import AsyncClient, Client
from docjobs.client import errors as client_errors
from tests import office_docs
from tests.docs import INVOICE, INVOICE_TEMPLATE, invoice_pdf, pdf_with_pages

PLANS = {"business": "6000/minute", "burst": "2/second"}


@pytest.fixture
def srv(make_server):
    return make_server(
        DOCJOBS_RUNNER__CONCURRENCY="2",
        DOCJOBS_RUNNER__PART_PAGES="2",
        DOCJOBS_RATE_LIMITS__PLANS=json.dumps(PLANS),
    ).start()


def test_jobs_from_submission_to_result(srv, tmp_path: Path) -> None:
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(pdf_with_pages(4, seed=21)[0])
    with Client(srv.base, srv.key("client")) as docjobs:
        accepted = docjobs.ocr(scan)
        assert accepted.status == "pending"
        done = docjobs.jobs.wait(accepted.job_id, timeout=120)
        assert done.status == "complete" and done.file_name == "scan.pdf"
        assert done.progress is not None and done.progress.pages_done == 4
        text = json.loads(docjobs.jobs.result(done.job_id))["data"]["text"]
        assert text.strip()

        pdf = docjobs.convert(b"<h1>Hello</h1>", "html")
        assert docjobs.jobs.wait(pdf.job_id, timeout=60).status == "complete"
        assert docjobs.jobs.result(pdf.job_id).startswith(b"%PDF")
        listed = docjobs.jobs.list(status="complete")
        assert {accepted.job_id, pdf.job_id} <= {job.job_id for job in listed.jobs}

        long = docjobs.ocr(pdf_with_pages(12, seed=22)[0], file_name="long.pdf")
        docjobs.jobs.cancel(long.job_id)
        assert docjobs.jobs.wait(long.job_id, timeout=30).status == "cancelled"
        with pytest.raises(client_errors.JobNotComplete):
            docjobs.jobs.result(long.job_id)
        with pytest.raises(client_errors.JobFinished):
            docjobs.jobs.cancel(done.job_id)
        with pytest.raises(client_errors.JobNotFound) as missing:
            docjobs.jobs.get("job_000000000000000000000000")
        assert missing.value.status_code == 404


def test_templates_webhooks_and_parse(srv) -> None:
    with Client(srv.base, srv.key("client")) as docjobs:
        template = docjobs.templates.create(INVOICE_TEMPLATE)
        assert docjobs.templates.get(template.template_id).name == "invoice"
        renamed = docjobs.templates.update(
            template.template_id, {**INVOICE_TEMPLATE, "name": "bill"}
        )
        assert renamed.name == "bill"
        assert [t.template_id for t in docjobs.templates.list()] == [template.template_id]

        parsed = docjobs.parse(invoice_pdf(), template.template_id, file_name="invoice.pdf")
        assert docjobs.jobs.wait(parsed.job_id, timeout=120).status == "complete"
        fields = json.loads(docjobs.jobs.result(parsed.job_id))
        assert INVOICE["number"] in json.dumps(fields)

        docjobs.templates.delete(template.template_id)
        with pytest.raises(client_errors.TemplateNotFound):
            docjobs.templates.get(template.template_id)

        endpoint = docjobs.webhooks.create("https://hooks.example.com/docjobs", description="ops")
        assert endpoint.secret
        assert docjobs.webhooks.get(endpoint.id).description == "ops"
        updated = docjobs.webhooks.update(endpoint.id, events=["job.failed"])
        assert updated.events == ["job.failed"]
        assert [e.id for e in docjobs.webhooks.list()] == [endpoint.id]
        docjobs.webhooks.delete(endpoint.id)
        assert docjobs.webhooks.list() == []
        with pytest.raises(client_errors.UnsafeWebhookUrl):
            docjobs.webhooks.create("http://127.0.0.1/hook")


def test_rate_limited_submissions_are_retried_after_retry_after(srv) -> None:
    key = srv.key("bursty", plan="burst")
    with (
        Client(srv.base, key, max_retries=0) as impatient,
        pytest.raises(client_errors.RateLimited),
    ):
        for n in range(4):
            impatient.convert(f"note {n}".encode(), "text")
    time.sleep(1.1)
    with Client(srv.base, key) as patient:
        started = time.monotonic()
        accepted = [patient.convert(f"note {n}".encode(), "text") for n in range(4)]
        assert len({job.job_id for job in accepted}) == 4
        assert time.monotonic() - started >= 0.5, "the limit was not reached"


def test_async_client_waits_on_the_event_stream(srv) -> None:
    async def scenario() -> str:
        async with AsyncClient(srv.base, srv.key("async")) as docjobs:
            accepted = await docjobs.ocr(pdf_with_pages(4, seed=23)[0], file_name="scan.pdf")
            done = await docjobs.jobs.wait(accepted.job_id, timeout=120)
            assert done.status == "complete"
            assert done.progress is not None and done.progress.pages_done == 4
            assert json.loads(await docjobs.jobs.result(done.job_id))["data"]["text"].strip()
            listed = await docjobs.jobs.list()
            assert listed.total == 1
            return accepted.job_id

    job_id = asyncio.run(scenario())
    assert f"GET /api/v1/jobs/{job_id}/events" in srv.log_path.read_text()


def pdfa_part(pdf: bytes) -> str | None:
    """The PDF/A part the file's XMP metadata claims (``pdfaid:part``), if any."""
    xmp = PdfReader(io.BytesIO(pdf)).xmp_metadata
    packet = xmp.stream.get_data().decode() if xmp is not None else ""
    claimed = re.search(r'pdfaid:part(?:>|=")(\d)', packet)
    return claimed.group(1) if claimed else None


def test_conversions_take_a_pdf_variant(srv) -> None:
    with Client(srv.base, srv.key("variants")) as docjobs:
        memo = office_docs.docx("Client memo", "The kea ledger")
        office = docjobs.convert(memo, "office", pdf_variant="pdf/a-3b")
        plain = docjobs.convert(memo, "office")
        for accepted in (office, plain):
            assert docjobs.jobs.wait(accepted.job_id, timeout=60).status == "complete"
        assert pdfa_part(docjobs.jobs.result(office.job_id)) == "3"
        assert pdfa_part(docjobs.jobs.result(plain.job_id)) is None
        assert docjobs.jobs.get(office.job_id).file_name == "document"

    async def scenario() -> bytes:
        async with AsyncClient(srv.base, srv.key("variants-async")) as docjobs:
            accepted = await docjobs.convert(b"<h1>Minutes</h1>", "html", pdf_variant="pdf/a-2b")
            assert (await docjobs.jobs.wait(accepted.job_id, timeout=60)).status == "complete"
            return await docjobs.jobs.result(accepted.job_id)

    assert pdfa_part(asyncio.run(scenario())) == "2"
