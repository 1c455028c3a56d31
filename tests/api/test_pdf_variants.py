"""``pdf_variant`` on conversions: the PDFs the API returns, sync and async, pass veraPDF for
the standard asked for (PDF/A-2b, PDF/A-3b, PDF/UA-1); a plain conversion claims none."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
import pytest
from pypdf import PdfReader

from tests.verapdf import Verdict, install_outside_test_timeout, validate

from .conftest import InProcessApi

MARKDOWN = (
    "# Annual archive\n\nThe *retention* policy keeps `records` for ten years.\n\n"
    "| Year | Boxes |\n|------|-------|\n| 2024 | 12 |\n\n- shelved\n- indexed\n"
)
HTML = (
    "<!DOCTYPE html><html><body><h1>Board minutes</h1>"
    '<p>Approved with <a href="https://example.org/vote">the vote</a>.</p>'
    '<img alt="seal" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ'
    'AAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==">'
    "</body></html>"
)
TEXT = "Accessible statement\nBalance carried forward: 1,250.75 EUR\n"


@pytest.fixture(scope="module")
def verapdf() -> None:
    install_outside_test_timeout()


async def convert(
    api: InProcessApi, key: str, source_format: str, content: str, variant: str | None
) -> bytes:
    data = {"content": content} | ({"pdf_variant": variant} if variant else {})
    path = f"/api/v1/convert/{source_format}-to-pdf"
    if variant != "pdf/a-3b":
        response = await api.post(key, path, data=data)
        assert response.status_code == 200, response.text
        return response.content
    queued = await api.post(key, f"{path}?async=true", data=data)
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["job_id"]
    assert (await api.wait_for(key, job_id))["status"] == "complete"
    return (await api.get(key, f"/api/v1/jobs/{job_id}/result")).content


@pytest.mark.anyio
async def test_conversions_pass_the_validator_for_the_standard_asked_for(
    api: InProcessApi, verapdf: None, tmp_path: Path
) -> None:
    key = api.key("pdf-variants")
    asked = {  # PDF/A-3b goes through the queue (async), the others answer in the request
        "a2b.pdf": ("markdown", MARKDOWN, "pdf/a-2b"),
        "a3b.pdf": ("html", HTML, "pdf/a-3b"),
        "ua1.pdf": ("text", TEXT, "pdf/ua-1"),
        "plain.pdf": ("text", TEXT, None),
    }
    for name, (source_format, content, variant) in asked.items():
        (tmp_path / name).write_bytes(await convert(api, key, source_format, content, variant))

    verdicts = await anyio.to_thread.run_sync(lambda: validate(*tmp_path.glob("*.pdf")))

    by_name = {path.name: verdict for path, verdict in verdicts.items()}
    assert by_name["a2b.pdf"] == Verdict(True, "2b")
    assert by_name["a3b.pdf"] == Verdict(True, "3b")
    assert by_name["ua1.pdf"] == Verdict(True, "ua1")
    # Claiming no standard, a plain PDF is checked as PDF/A-1b, which it is not.
    assert not by_name["plain.pdf"].passed
    ua = PdfReader(tmp_path / "ua1.pdf")
    # A text document names neither title nor language: the first line and English.
    assert ua.metadata is not None and ua.metadata.title == "Accessible statement"
    assert ua.trailer["/Root"]["/Lang"] == "en"
    assert "1,250.75" in ua.pages[0].extract_text()
    assert "retention" in PdfReader(tmp_path / "a2b.pdf").pages[0].extract_text()


@pytest.mark.anyio
@pytest.mark.parametrize("variant", ["pdf/a-1b", "pdf/x-3", "PDF/A-2B"])
async def test_an_unknown_variant_is_422(api: InProcessApi, variant: str) -> None:
    key = api.key("pdf-variants-bad")
    response = await api.post(
        key, "/api/v1/convert/text-to-pdf", data={"content": "x", "pdf_variant": variant}
    )
    assert response.status_code == 422, response.text
    assert "pdf_variant" in response.text


@pytest.mark.anyio
async def test_a_plain_conversion_is_unchanged(api: InProcessApi) -> None:
    key = api.key("pdf-variants-plain")
    response = await api.post(key, "/api/v1/convert/text-to-pdf", data={"content": "hello"})
    assert response.status_code == 200
    pdf = PdfReader(io.BytesIO(response.content))
    assert "/OutputIntents" not in pdf.trailer["/Root"]
    assert "/StructTreeRoot" not in pdf.trailer["/Root"]
