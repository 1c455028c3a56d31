"""Office documents on the OCR and parse routes and from the command line, through real
LibreOffice, Tesseract and the rules extractor on a real embedded backend: a .docx made here
is read for its words and fills a template's fields; a zip bomb, a zip of anything and a
page past the end are refused in words; a document over the sync size runs as a job; and
``docjobs submit`` turns a .docx into a PDF."""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from docx import Document
from docx.shared import Inches
from PIL import Image
from pypdf import PdfReader

from docjobs.api.app import create_app
from tests import office_docs
from tests.api.conftest import InProcessApi, app_settings, running
from tests.conftest import BIN, Server
from tests.docs import INVOICE, INVOICE_TEMPLATE

OCR = "/api/v1/ocr/extract/simple"
UNPACK_CEILING_MB = 8
SYNC_OFFICE_BYTES = 80 * 1024
"""Over a python-docx document of a few lines (~37 KB), under one carrying a noise image."""


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    # Through the environment, so that the runner workers have the same ceiling.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCJOBS_OFFICE__MAX_UNPACKED_MB", str(UNPACK_CEILING_MB))
        settings = app_settings(
            tmp_path_factory.mktemp("office-inputs") / "data",
            limits={"sync_office_bytes": SYNC_OFFICE_BYTES},
        )
        async with running(create_app(settings)) as started:
            yield started


async def read(api: InProcessApi, key: str, name: str, data: bytes, **form: str) -> Any:
    return await api.post(
        key, OCR, files={"file": (name, data, "application/octet-stream")}, data=form
    )


async def details_of(api: InProcessApi, tenant: str, job_id: str) -> dict[str, Any]:
    job = await api.app.state.backend.get(tenant, job_id)
    return dict(job.status.details)


def noisy_docx(words: str) -> bytes:
    """A one-page .docx that weighs more than its words: a picture of random pixels."""
    picture = io.BytesIO()
    Image.frombytes("L", (300, 300), os.urandom(300 * 300)).save(picture, "PNG")
    picture.seek(0)
    document = Document()
    document.add_heading(words, level=1)
    document.add_picture(picture, width=Inches(1))
    saved = io.BytesIO()
    document.save(saved)
    return saved.getvalue()


@pytest.mark.anyio
async def test_a_docx_is_read_by_tesseract_from_its_rendered_pages(api: InProcessApi) -> None:
    key = api.key("office-ocr")
    memo = office_docs.docx("Quarterly report", "The aardvark ledger balances")
    assert len(memo) <= SYNC_OFFICE_BYTES

    answer = await read(api, key, "memo.docx", memo)

    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["page_count"] == 1
    assert "Quarterly report" in data["text"], data["text"]
    assert "aardvark ledger balances" in data["text"], data["text"]
    assert data["pages"][0]["confidence"] > 50
    details = await details_of(api, "office-ocr", answer.headers["X-Job-Id"])
    assert details["source_type"] == "docx"


@pytest.mark.anyio
async def test_a_docx_fills_a_templates_fields_from_its_text(api: InProcessApi) -> None:
    key = api.key("office-parse")
    created = await api.post(key, "/v1/templates", json=INVOICE_TEMPLATE)
    assert created.status_code == 201, created.text
    invoice = office_docs.docx(
        "Acme Corporation",
        "Vendor: Acme Corporation",
        f"Invoice No: {INVOICE['number']}",
        f"Invoice Date: {INVOICE['date']}",
        "Bill to: Globex Ltd",
        "Total Due: $1,250.75",
    )

    answer = await api.post(
        key,
        "/v1/documents/parse",
        files={"file": ("invoice.docx", invoice, "application/octet-stream")},
        data={"templateId": created.json()["templateId"]},
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "completed", body
    assert body["result"]["invoice"] == {
        "number": INVOICE["number"],
        "date": INVOICE["iso_date"],
        "total": INVOICE["total"],
        "vendor": INVOICE["vendor"],
    }
    details = await details_of(api, "office-parse", body["jobId"])
    assert details["source_type"] == "docx"


@pytest.mark.anyio
async def test_a_zip_bomb_or_a_zip_of_anything_is_refused_in_words(api: InProcessApi) -> None:
    key = api.key("office-refusals")
    bomb = office_docs.zip_bomb(4 * UNPACK_CEILING_MB * 1024 * 1024)

    answer = await read(api, key, "bomb.docx", bomb)

    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "document_too_complex"
    assert "DOCJOBS_OFFICE__MAX_UNPACKED_MB" in error["message"]

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as written:
        written.writestr("readme.txt", "hello")
    answer = await read(api, key, "archive.zip", archive.getvalue())
    assert answer.status_code == 415, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith("OCR and parsing accept PDF, PNG, JPEG, TIFF and Office"), message
    assert "docx" in message and "without an Office or OpenDocument main part" in message

    answer = await read(api, key, "notes.txt", b"plain words, not a document")
    assert answer.status_code == 415, answer.text
    assert "this file is text/plain" in answer.json()["error"]["message"]


@pytest.mark.anyio
async def test_a_page_past_the_end_of_an_office_document_fails_naming_it(
    api: InProcessApi,
) -> None:
    key = api.key("office-pages")
    memo = office_docs.docx("One page", "only")

    answer = await read(api, key, "memo.docx", memo, pages="3")

    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "page_range_out_of_bounds"
    assert "1 page" in error["message"], error
    bad = await read(api, key, "memo.docx", memo, pages="0")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_page_range"


@pytest.mark.anyio
async def test_an_office_document_over_the_sync_size_runs_as_a_job(api: InProcessApi) -> None:
    key = api.key("office-large")
    heavy = noisy_docx("Heavy pelican report")
    assert len(heavy) > SYNC_OFFICE_BYTES

    answer = await read(api, key, "heavy.docx", heavy)

    assert answer.status_code == 202, answer.text
    job = await api.wait_for(key, answer.json()["job_id"])
    assert job["status"] == "complete", job
    result = (await api.get(key, f"/api/v1/jobs/{job['job_id']}/result")).json()
    assert "pelican" in result["data"]["text"], result


# --- the command line ----------------------------------------------------------------------


@pytest.fixture
def cli_env(server: Server) -> Iterator[dict[str, str]]:
    yield {**os.environ, "DOCJOBS_URL": server.base, "DOCJOBS_API_KEY": server.key("office-cli")}


def docjobs(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "docjobs"), *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_submit_converts_a_docx_to_a_pdf(cli_env: dict[str, str], tmp_path: Path) -> None:
    memo = tmp_path / "memo.docx"
    memo.write_bytes(office_docs.docx("Command line memo", "The quokka was converted"))

    submitted = docjobs(cli_env, "submit", str(memo), "--op", "convert", "--wait")

    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[-1]
    pdf = tmp_path / "memo.pdf"
    fetched = docjobs(cli_env, "jobs", "result", job_id, "-o", str(pdf))
    assert fetched.returncode == 0, fetched.stderr
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "quokka was converted" in text, text
    listed = docjobs(cli_env, "jobs", "list", "--operation", "convert")
    assert job_id in listed.stdout and "memo.docx" in listed.stdout, listed.stdout

    odd = tmp_path / "memo.pages"
    odd.write_bytes(b"not a format the server takes")
    refused = docjobs(cli_env, "submit", str(odd), "--op", "convert")
    assert refused.returncode == 1
    assert ".docx" in refused.stderr and ".html" in refused.stderr, refused.stderr
