"""The runner on Office jobs that did not come through the API's checks, and what the API
makes of an Office document sent to be read: a PDF/UA-1 conversion of a spreadsheet or a
presentation fails for good in words, whatever the request said; an OCR job of a .docx
reads the PDF LibreOffice lays it out to; an upload's kind is told by its content."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from docjobs.config import get_settings
from docjobs.documents import DocumentError, Inspection, InspectionCeilings
from docjobs.domain.models import (
    EXIT_OK,
    EXIT_PERMANENT,
    ConvertToPdf,
    InputRef,
    JobSpec,
    OcrAdvanced,
    OcrSimple,
    Operation,
    WorkerRequest,
)
from docjobs.office_files import FORMATS, UnpackCeilings, inspect_for_reading
from docjobs.runner.batch import execute_batch
from docjobs.runner.execute import execute
from docjobs.storage.local import LocalStore
from tests import office_docs
from tests.docs import pdf_with_pages
from tests.doctr_weights import doctr_env, save_stand_in_weights

UNPACK = UnpackCeilings(max_unpacked_bytes=4 * 1024 * 1024, max_entries=50)


@pytest.fixture(autouse=True)
def worker_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A TMPDIR of the test's own, as a worker has: the LibreOffice profile goes with it."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def job(store: LocalStore, name: str, data: bytes, operation: Operation) -> JobSpec:
    """A job as a runner receives it, its input stored with the type the API would record."""
    job_id = "job_" + name.replace(".", "x").ljust(24, "0")[:24]
    key = f"acme/{job_id}/input"
    store.put_bytes(key, data, "application/octet-stream")
    content_type = FORMATS[name.rsplit(".", 1)[1]].content_type
    return JobSpec(
        job_id=job_id,
        tenant="acme",
        operation=operation,
        input=InputRef(
            key=key, file_name=name, content_type=content_type, sha256="0", size=len(data)
        ),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("sheet.xlsx", office_docs.xlsx([["Item"], ["wombat"]])),
        ("deck.pptx", office_docs.pptx("Deck", "echidna")),
    ],
)
def test_pdf_ua_of_a_spreadsheet_or_presentation_fails_for_good_in_words(
    tmp_path: Path, name: str, data: bytes
) -> None:
    store = LocalStore(tmp_path / "objects")
    operation = ConvertToPdf(source_format="office", pdf_variant="pdf/ua-1")

    outcome = execute(job(store, name, data, operation), 1, store)

    assert outcome.exit_code == EXIT_PERMANENT
    error = outcome.summary.error
    assert error is not None and error.permanent
    assert error.reason == "UnsupportedPdfVariant"
    assert "text documents (doc, docx, odt, rtf) only" in error.message
    assert "untagged" in error.message


def test_an_ocr_job_of_a_docx_reads_the_pdf_libreoffice_lays_out(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    memo = office_docs.docx("Runner memo", "The bandicoot tally")

    outcome = execute(job(store, "memo.docx", memo, OcrSimple()), 1, store)

    assert outcome.exit_code == EXIT_OK, outcome.summary.error
    assert outcome.summary.page_count == 1
    assert outcome.summary.details["source_type"] == "docx"
    assert outcome.summary.result is not None
    result = json.loads(b"".join(store.iter_chunks(outcome.summary.result.key)))
    assert "bandicoot tally" in result["data"]["text"]


def test_an_ocr_job_of_a_zip_bomb_fails_for_good_naming_the_ceiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCJOBS_OFFICE__MAX_UNPACKED_MB", "4")
    store = LocalStore(tmp_path / "objects")
    bomb = office_docs.zip_bomb(16 * 1024 * 1024)

    get_settings.cache_clear()
    try:
        outcome = execute(job(store, "bomb.docx", bomb, OcrSimple()), 1, store)
    finally:
        get_settings.cache_clear()

    assert outcome.exit_code == EXIT_PERMANENT
    assert outcome.summary.error is not None
    assert outcome.summary.error.reason == "DocumentTooComplex"
    assert "DOCJOBS_OFFICE__MAX_UNPACKED_MB" in outcome.summary.error.message


def test_a_docx_for_doctr_is_laid_out_and_read_outside_the_shared_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU worker's batch: the shared passes render PDFs and images only."""
    pytest.importorskip("doctr", reason="the doctr extra is not installed")
    for name, value in doctr_env(save_stand_in_weights(tmp_path / "weights")).items():
        monkeypatch.setenv(name, value)
    store = LocalStore(tmp_path / "objects")
    memo = job(store, "memo.docx", office_docs.docx("Memo", "words"), OcrAdvanced())

    get_settings.cache_clear()
    try:
        [outcome] = execute_batch([WorkerRequest(spec=memo, attempt=1)], store)
    finally:
        get_settings.cache_clear()

    assert outcome.exit_code == EXIT_OK, outcome.summary.error
    assert outcome.summary.page_count == 1
    assert outcome.summary.details["source_type"] == "docx"
    assert "batch_documents" not in outcome.summary.details


def test_an_upload_to_read_is_told_by_its_content(tmp_path: Path) -> None:
    def inspect(name: str, data: bytes, declared: str | None = None) -> Inspection:
        path = tmp_path / name
        path.write_bytes(data)
        return inspect_for_reading(path, declared, name, InspectionCeilings(), UNPACK)

    memo = office_docs.docx("Heading", "body")
    # Office documents, whatever their name or declared type: pages unknown until laid out.
    assert inspect("memo.docx", memo) == Inspection(FORMATS["docx"].content_type, None)
    assert inspect("upload", memo, "application/pdf").content_type == FORMATS["docx"].content_type
    assert inspect("a.rtf", b"{\\rtf1 hi}").content_type == FORMATS["rtf"].content_type
    # PDFs and images as before, with their pages counted.
    assert inspect("scan.pdf", pdf_with_pages(2)[0]) == Inspection("application/pdf", 2)
    refusals = {
        "notes.txt": (b"plain words", 415, "this file is text/plain"),
        "sheet.xlsx": (memo, 415, "named .xlsx but its content is a .docx"),
        "bomb.docx": (office_docs.zip_bomb(8 * 1024 * 1024), 422, "MAX_UNPACKED_MB"),
    }
    for name, (data, status, words) in refusals.items():
        with pytest.raises(DocumentError) as refused:
            inspect(name, data)
        assert refused.value.status_code == status, name
        assert words in refused.value.message, (name, refused.value.message)
        if status == 415:
            assert refused.value.message.startswith("OCR and parsing accept PDF, PNG"), name
