"""A worker's LibreOffice kept running across documents, in the in-process app on a real
embedded backend with one runner worker: documents one after the other are converted by
the same LibreOffice, which is closed after ``office.documents_per_process`` of them; a
document that outlasts its limit has that LibreOffice killed and fails in words, and the
worker's next document converts in a new one."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest
from pypdf import PdfReader

from docjobs.api.app import create_app
from tests import office_docs
from tests.api.conftest import InProcessApi, app_settings, running

ROUTE = "/api/v1/convert/office-to-pdf"
TIMEOUT_SECONDS = 6
DOCUMENTS_PER_PROCESS = 3


@pytest.fixture(scope="module")
def office_limits() -> Iterator[None]:
    # Through the environment, so that the runner worker has them.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCJOBS_OFFICE__TIMEOUT_SECONDS", str(TIMEOUT_SECONDS))
        patch.setenv("DOCJOBS_OFFICE__DOCUMENTS_PER_PROCESS", str(DOCUMENTS_PER_PROCESS))
        yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("office-warm")) / "data"


@pytest.fixture(scope="module")
async def api(data_dir: Path, office_limits: None) -> AsyncIterator[InProcessApi]:
    async with running(create_app(app_settings(data_dir))) as api:
        yield api


def libreoffices(data_dir: Path) -> set[tuple[int, float]]:
    """The app's running LibreOffice processes (their profiles are in its workers' scratch
    directories), as (pid, start time): a pid alone could be reused."""
    found = set()
    for process in psutil.Process().children(recursive=True):
        try:
            if process.name() == "soffice.bin" and any(
                str(data_dir) in part for part in process.cmdline()
            ):
                found.add((process.pid, process.create_time()))
        except psutil.NoSuchProcess:
            continue
    return found


async def convert(api: InProcessApi, key: str, n: int) -> str:
    words = f"numbat number {n}"
    data = office_docs.docx(f"Memo {n}", words)
    answer = await api.post(key, ROUTE, files={"file": (f"memo-{n}.docx", data)})
    assert answer.status_code == 200, answer.text
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(answer.content)).pages)
    assert words in text
    return text


@pytest.mark.anyio
async def test_documents_share_one_libreoffice_until_the_restart(
    api: InProcessApi, data_dir: Path
) -> None:
    key = api.key("office-warm")
    seen = []
    for n in range(DOCUMENTS_PER_PROCESS + 1):
        await convert(api, key, n)
        seen.append(libreoffices(data_dir))
    first = seen[0]
    assert len(first) == 1, seen
    # The same process for the first documents; closed after the last it may convert.
    assert seen[: DOCUMENTS_PER_PROCESS - 1] == [first] * (DOCUMENTS_PER_PROCESS - 1), seen
    assert seen[DOCUMENTS_PER_PROCESS - 1] == set(), seen
    assert len(seen[DOCUMENTS_PER_PROCESS]) == 1 and seen[DOCUMENTS_PER_PROCESS] != first, seen


@pytest.mark.anyio
async def test_a_document_past_its_limit_is_killed_and_the_next_converts(
    api: InProcessApi, data_dir: Path
) -> None:
    key = api.key("office-hang")
    await convert(api, key, 1)
    before = libreoffices(data_dir)
    assert len(before) == 1
    started = time.monotonic()
    answer = await api.post(
        key, ROUTE, files={"file": ("endless.docx", office_docs.long_docx(100_000))}
    )
    took = time.monotonic() - started
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "office_timeout", error
    assert f"within {TIMEOUT_SECONDS} s" in error["message"], error
    assert "DOCJOBS_OFFICE__TIMEOUT_SECONDS" in error["message"], error
    assert took < TIMEOUT_SECONDS + 10, took
    assert libreoffices(data_dir) == set()  # killed, not left to finish
    await convert(api, key, 2)
    after = libreoffices(data_dir)
    assert len(after) == 1 and after != before


def unopenable_docx() -> bytes:
    """A package that says it is a Word document, whose document part is not XML."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr("word/document.xml", b"\x00\x01 not a document <<<")
    return buffer.getvalue()


@pytest.mark.anyio
async def test_a_document_libreoffice_cannot_open_ends_its_libreoffice(
    api: InProcessApi, data_dir: Path
) -> None:
    key = api.key("office-unopenable")
    await convert(api, key, 1)
    before = libreoffices(data_dir)
    answer = await api.post(key, ROUTE, files={"file": ("broken.docx", unopenable_docx())})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "unreadable_document", error
    assert error["message"] == "LibreOffice could not open the .docx document.", error
    assert libreoffices(data_dir) == set()
    await convert(api, key, 2)
    after = libreoffices(data_dir)
    assert len(after) == 1 and after != before
