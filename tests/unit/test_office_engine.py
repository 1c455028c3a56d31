"""The Office engine on real LibreOffice, and what an Office file is told to be by its
content: a hung conversion is killed with its whole process group and the next document
converts; a name that lies, a zip of anything and a zip bomb are refused in words."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from docx import Document
from pypdf import PdfReader

from docjobs.config import OperatorSettings, Settings
from docjobs.documents import DocumentError
from docjobs.domain.engines import PLACEMENTS, placement_of
from docjobs.domain.models import ConvertToPdf, Engine, InputRef, JobSpec, engine_of
from docjobs.office_files import UnpackCeilings, check_unpacked, detect
from docjobs.operator.builders import build_job
from docjobs.runner.engines import PermanentError, office
from tests import office_docs
from tests.receivers import fetch_listener

CEILINGS = UnpackCeilings(max_unpacked_bytes=4 * 1024 * 1024, max_entries=50)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def pdf_text(path: Path) -> str:
    return " ".join(page.extract_text() for page in PdfReader(path).pages)


def soffice_processes(profile: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(profile) in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


@pytest.fixture(scope="module", autouse=True)
def worker_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A TMPDIR of the module's own, as a worker has: the LibreOffice profile goes with it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(tmp_path_factory.mktemp("worker")))
        yield


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    with fetch_listener() as listening:
        yield listening


def test_office_conversions_run_on_the_cpu_pool_under_their_own_engine() -> None:
    operation = ConvertToPdf(source_format="office")
    assert engine_of(operation) is Engine.OFFICE
    assert placement_of(operation) == PLACEMENTS[Engine.OFFICE]
    assert OperatorSettings().engines[Engine.OFFICE].pool == "cpu"
    assert engine_of(ConvertToPdf(source_format="html")) is Engine.CONVERT


def test_an_office_runner_job_goes_to_the_cpu_pool_with_the_office_profile() -> None:
    settings = OperatorSettings()
    spec = JobSpec(
        job_id="job_" + "a" * 24,
        tenant="acme",
        operation=ConvertToPdf(source_format="office"),
        input=InputRef(
            key="k", file_name="memo.docx", content_type="application/msword", sha256="0", size=1
        ),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    resource = {"metadata": {"name": "job-abc", "namespace": "ns", "uid": "u-1"}}
    job = build_job(resource, spec, 1, settings, "job-abc-a1-manifest-0a1b2c3d")
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["labels"]["docjobs.io/engine"] == "office"
    assert pod["nodeSelector"] == {"docjobs.io/pool": "cpu"}
    assert pod["containers"][0]["image"] == settings.runner_image
    assert pod["containers"][0]["resources"]["limits"] == {"memory": "2Gi"}
    assert job["spec"]["activeDeadlineSeconds"] <= PLACEMENTS[Engine.OFFICE].attempt_seconds


def test_the_type_is_told_by_the_content_not_the_name(tmp_path: Path) -> None:
    document = office_docs.docx("Heading", "body")
    assert (
        detect(write(tmp_path, "report.docx", document), "report.docx", CEILINGS).extension
        == "docx"
    )
    # No name, or a name outside the list: the content decides.
    assert detect(write(tmp_path, "upload", document), None, CEILINGS).extension == "docx"
    assert detect(write(tmp_path, "a.rtf", b"{\\rtf1 hi}"), "a.rtf", CEILINGS).extension == "rtf"
    odt = write(tmp_path, "a.odt", office_docs.odt("hi"))
    assert detect(odt, "a.odt", CEILINGS).extension == "odt"
    refusals = {
        "a spreadsheet name on a word document": ("book.xlsx", document),
        "a PNG named docx": ("scan.docx", b"\x89PNG\r\n\x1a\n" + bytes(64)),
        "text named xls": ("notes.xls", b"just some words"),
        "a zip of anything": ("archive.pptx", _zip({"readme.txt": b"hello"})),
    }
    for case, (name, data) in refusals.items():
        with pytest.raises(DocumentError) as refused:
            detect(write(tmp_path, name, data), name, CEILINGS)
        assert refused.value.status_code == 415, case
        assert "accepts doc, docx" in refused.value.message, case


def test_a_zip_bomb_and_a_crowded_zip_are_refused_naming_their_ceiling(tmp_path: Path) -> None:
    bomb = write(tmp_path, "bomb.docx", office_docs.zip_bomb(8 * 1024 * 1024))
    assert bomb.stat().st_size < 64 * 1024
    with pytest.raises(DocumentError) as refused:
        detect(bomb, "bomb.docx", CEILINGS)
    assert refused.value.code == "document_too_complex"
    assert "DOCJOBS_OFFICE__MAX_UNPACKED_MB" in refused.value.message
    crowded = _zip(
        {"[Content_Types].xml": b"wordprocessingml.document.main+xml"}
        | {f"part{i}.xml": b"x" for i in range(60)}
    )
    with pytest.raises(DocumentError) as refused:
        check_unpacked(write(tmp_path, "crowded.docx", crowded), CEILINGS)
    assert "DOCJOBS_OFFICE__MAX_ENTRIES" in refused.value.message


def test_a_hung_conversion_is_killed_and_the_next_document_converts(tmp_path: Path) -> None:
    slow = write(tmp_path, "slow.docx", office_docs.long_docx(100_000))
    hurried = Settings(office={"timeout_seconds": 2})
    (tmp_path / "first").mkdir()
    with pytest.raises(PermanentError) as failed:
        office.to_pdf(slow, tmp_path / "first", hurried)
    assert failed.value.reason == "OfficeTimeout"
    assert "DOCJOBS_OFFICE__TIMEOUT_SECONDS" in failed.value.message
    assert soffice_processes(office.profile_dir()) == []
    (tmp_path / "second").mkdir()
    source = write(tmp_path, "next.docx", office_docs.docx("Patience", "wombat"))
    converted = office.to_pdf(source, tmp_path / "second", Settings())
    assert "wombat" in pdf_text(converted.path)


def test_a_document_past_the_page_ceiling_fails_naming_it(tmp_path: Path) -> None:
    document = Document()
    for page in range(3):
        document.add_paragraph(f"page {page}")
        document.add_page_break()
    buffer = io.BytesIO()
    document.save(buffer)
    source = write(tmp_path, "long.docx", buffer.getvalue())
    with pytest.raises(PermanentError) as failed:
        office.to_pdf(source, tmp_path, Settings(ceilings={"max_convert_pages": 2}))
    assert failed.value.reason == "TooManyPages"
    assert "DOCJOBS_CEILINGS__MAX_CONVERT_PAGES" in failed.value.message


def test_without_libreoffice_the_job_fails_saying_so(tmp_path: Path) -> None:
    source = write(tmp_path, "memo.docx", office_docs.docx("Memo", "words"))
    with pytest.raises(PermanentError) as failed:
        office.to_pdf(source, tmp_path, Settings(office={"soffice": "no-such-soffice"}))
    assert failed.value.reason == "OfficeNotInstalled"


def test_linked_images_are_not_fetched_even_with_the_network(
    tmp_path: Path, listener: tuple[str, list[str]]
) -> None:
    base, asked = listener
    body = office_docs.linked_image(f"{base}/pixel.png")
    source = write(tmp_path, "linked.odt", office_docs.odt("Linked numbat", body_extra=body))
    # The profile's settings alone: LibreOffice shares the test's network here.
    converted = office.to_pdf(source, tmp_path, Settings(office={"isolate_network": False}))
    assert "numbat" in pdf_text(converted.path)
    assert asked == []


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()
