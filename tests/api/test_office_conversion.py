"""Office documents to PDF through real LibreOffice, in the in-process app on a real
embedded backend: Word, Excel, PowerPoint and OpenDocument files made here convert with
their words; a macro never runs, a linked image is never fetched, a zip bomb and a file
that is not what its name says are refused in words, and the next document converts. A
``pdf_variant`` gives PDFs that pass veraPDF for the standard asked for."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from pypdf import PdfReader

from docjobs.api.app import create_app
from tests import office_docs
from tests.api.conftest import InProcessApi, app_settings, running
from tests.receivers import fetch_listener
from tests.verapdf import Verdict, install_outside_test_timeout, validate

ROUTE = "/api/v1/convert/office-to-pdf"
UNPACK_CEILING_MB = 8


@pytest.fixture(scope="module")
def unpack_ceiling() -> Iterator[None]:
    # Through the environment, so that the runner workers have the same ceiling.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCJOBS_OFFICE__MAX_UNPACKED_MB", str(UNPACK_CEILING_MB))
        yield


@pytest.fixture(scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, unpack_ceiling: None
) -> AsyncIterator[InProcessApi]:
    data = Path(tmp_path_factory.mktemp("office")) / "data"
    async with running(create_app(app_settings(data))) as api:
        yield api


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[str, list[str]]]:
    with fetch_listener() as listening:
        yield listening


async def convert(api: InProcessApi, key: str, name: str, data: bytes, **params: str):  # type: ignore[no-untyped-def]
    return await api.post(
        key, ROUTE, files={"file": (name, data, "application/octet-stream")}, params=params
    )


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return " ".join(page.extract_text() for page in reader.pages)


async def assert_converts(api: InProcessApi, key: str) -> None:
    """The worker that refused or survived a document converts the next one."""
    answer = await convert(api, key, "next.docx", office_docs.docx("Next", "quokka follows"))
    assert answer.status_code == 200, answer.text
    assert "quokka follows" in text_of(answer.content)


DOCUMENTS = {
    "docx": ("memo.docx", lambda: office_docs.docx("Quarterly report", "The aardvark ledger")),
    "xlsx": ("sheet.xlsx", lambda: office_docs.xlsx([["Item", "Qty"], ["pangolin", 42]])),
    "pptx": ("deck.pptx", lambda: office_docs.pptx("Roadmap", "capybara launch")),
    "odt": ("letter.odt", lambda: office_docs.odt("Dear okapi, greetings")),
}
WORDS = {
    "docx": ["Quarterly report", "aardvark ledger"],
    "xlsx": ["pangolin", "42"],
    "pptx": ["Roadmap", "capybara launch"],
    "odt": ["Dear okapi"],
}


@pytest.mark.anyio
@pytest.mark.parametrize("kind", list(DOCUMENTS))
async def test_office_documents_convert_with_their_words(api: InProcessApi, kind: str) -> None:
    name, make = DOCUMENTS[kind]
    answer = await convert(api, api.key(f"office-{kind}"), name, make())
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf"
    text = text_of(answer.content)
    for word in WORDS[kind]:
        assert word in text, (kind, text)


@pytest.mark.anyio
async def test_an_async_conversion_is_a_convert_job(api: InProcessApi) -> None:
    key = api.key("office-async")
    data = office_docs.docx("Later", "tapir in the queue")
    submitted = await convert(api, key, "later.docx", data, **{"async": "true"})
    assert submitted.status_code == 202, submitted.text
    job = await api.wait_for(key, submitted.json()["job_id"])
    assert job["status"] == "complete", job
    assert job["operation"] == "convert"
    result = await api.get(key, f"/api/v1/jobs/{job['job_id']}/result")
    assert "tapir in the queue" in text_of(result.content)


@pytest.mark.anyio
async def test_a_document_with_a_macro_on_load_converts_without_running_it(
    api: InProcessApi, tmp_path: Path
) -> None:
    """The load forbids macros (``MacroExecutionMode`` NEVER) and so does the profile
    (security level 3, execution disabled). LibreOffice 7.4 runs no macro bound to this
    document's load event even when a load asks it to (tried by hand), so the marker guards
    against a LibreOffice that would; the conversion itself and the next one are what this
    LibreOffice shows."""
    key = api.key("office-macro")
    marker = tmp_path / "macro-ran"
    macro = f'Open "{marker}" For Output As #1\nPrint #1, "ran"\nClose #1'
    answer = await convert(api, key, "macro.odt", office_docs.odt("Macro wallaby", macro=macro))
    assert answer.status_code == 200, answer.text
    assert "Macro wallaby" in text_of(answer.content)
    assert not marker.exists()
    await assert_converts(api, key)


@pytest.mark.anyio
async def test_a_linked_image_is_never_fetched(
    api: InProcessApi, listener: tuple[str, list[str]]
) -> None:
    key = api.key("office-link")
    base, asked = listener
    body = office_docs.linked_image(f"{base}/tracker.png")
    answer = await convert(api, key, "linked.odt", office_docs.odt("Linked dingo", body_extra=body))
    assert answer.status_code == 200, answer.text
    assert "Linked dingo" in text_of(answer.content)
    assert asked == []


@pytest.mark.anyio
async def test_a_zip_bomb_is_refused_naming_the_ceiling(api: InProcessApi) -> None:
    key = api.key("office-bomb")
    bomb = office_docs.zip_bomb(4 * UNPACK_CEILING_MB * 1024 * 1024)
    answer = await convert(api, key, "bomb.docx", bomb)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "document_too_complex"
    assert "DOCJOBS_OFFICE__MAX_UNPACKED_MB" in error["message"]
    await assert_converts(api, key)


@pytest.mark.anyio
async def test_a_file_that_is_not_what_its_name_says_is_refused(api: InProcessApi) -> None:
    key = api.key("office-liar")
    cases = {
        "photo.docx": b"\x89PNG\r\n\x1a\n" + bytes(64),
        "notes.doc": b"plain words, not a Word file",
        "budget.xlsx": office_docs.docx("Not a sheet", "words"),
    }
    for name, data in cases.items():
        answer = await convert(api, key, name, data)
        assert answer.status_code == 415, (name, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "unsupported_media_type", name
        assert "accepts doc, docx" in error["message"], name
    await assert_converts(api, key)


async def convert_as(api: InProcessApi, key: str, name: str, data: bytes, variant: str):  # type: ignore[no-untyped-def]
    return await api.post(
        key,
        ROUTE,
        files={"file": (name, data, "application/octet-stream")},
        data={"pdf_variant": variant},
    )


@pytest.mark.anyio
async def test_office_pdf_variants_pass_the_validator(api: InProcessApi, tmp_path: Path) -> None:
    install_outside_test_timeout()
    key = api.key("office-variants")
    asked = {
        "a2b.pdf": (
            "memo.docx",
            office_docs.docx("Archived memo", "The numbat ledger"),
            "pdf/a-2b",
        ),
        "a3b.pdf": ("sheet.xlsx", office_docs.xlsx([["Item", "Qty"], ["bilby", 7]]), "pdf/a-3b"),
        # No title in the document's properties: the first line of its text becomes it.
        "ua1.pdf": (
            "notes.docx",
            office_docs.docx("Accessible notes", "Quoll sightings"),
            "pdf/ua-1",
        ),
    }
    for name, (file_name, data, variant) in asked.items():
        answer = await convert_as(api, key, file_name, data, variant)
        assert answer.status_code == 200, answer.text
        (tmp_path / name).write_bytes(answer.content)

    verdicts = await anyio.to_thread.run_sync(lambda: validate(*tmp_path.glob("*.pdf")))

    by_name = {path.name: verdict for path, verdict in verdicts.items()}
    assert by_name["a2b.pdf"] == Verdict(True, "2b")
    assert by_name["a3b.pdf"] == Verdict(True, "3b")
    assert by_name["ua1.pdf"] == Verdict(True, "ua1")
    assert "numbat ledger" in text_of((tmp_path / "a2b.pdf").read_bytes())
    ua = PdfReader(tmp_path / "ua1.pdf")
    assert ua.metadata is not None and ua.metadata.title == "Accessible notes"


@pytest.mark.anyio
async def test_pdf_ua_is_refused_for_a_spreadsheet_or_presentation(api: InProcessApi) -> None:
    key = api.key("office-ua-refused")
    documents = {
        "sheet.xlsx": office_docs.xlsx([["Item"], ["wombat"]]),
        "deck.pptx": office_docs.pptx("Deck", "echidna"),
    }
    for name, data in documents.items():
        answer = await convert_as(api, key, name, data, "pdf/ua-1")
        assert answer.status_code == 422, (name, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "unsupported_pdf_variant", name
        assert "text documents (doc, docx, odt, rtf) only" in error["message"], name
        assert "untagged" in error["message"], name
