"""The OCR routes answer in hOCR, ALTO and Markdown, and say how well a document read."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import InProcessApi
from tests.docs import png_bytes, text_image

OCR = "/api/v1/ocr/extract/simple"
LINES = ["Quarterly report of the warehouse", "Every shipment arrived on schedule"]


async def _ocr(api: InProcessApi, key: str, output: str) -> tuple[bytes, dict[str, str], str]:
    """The sync answer's body and headers, and its job's id."""
    scan = png_bytes(text_image(LINES))
    response = await api.post(
        key, OCR, files={"file": ("report.png", scan, "image/png")}, data={"output": output}
    )
    assert response.status_code == 200, response.text
    return response.content, dict(response.headers), response.headers["X-Job-Id"]


@pytest.mark.anyio
async def test_each_format_downloads_with_its_type_and_extension(api: InProcessApi) -> None:
    key = api.key("archivist")
    for output, media_type, extension, marker in [
        ("markdown", "text/markdown; charset=utf-8", "md", b"Quarterly report of the warehouse"),
        ("alto", "application/xml", "xml", b'CONTENT="Quarterly"'),
        ("hocr", "application/xhtml+xml", "hocr", b'class="ocrx_word"'),
    ]:
        body, headers, job_id = await _ocr(api, key, output)
        assert headers["content-type"] == media_type, output
        assert headers["content-disposition"] == f'attachment; filename="report.{extension}"'
        assert marker in body, output
        job = (await api.get(key, f"/api/v1/jobs/{job_id}")).json()
        assert job["confidence"]["worst_page"] == 1 and job["confidence"]["mean"] > 80, job
        download = await api.get(key, f"/api/v1/jobs/{job_id}/result")
        assert download.content == body


@pytest.mark.anyio
async def test_the_json_result_gives_each_page_and_the_document_a_confidence(
    api: InProcessApi,
) -> None:
    body, _, _ = await _ocr(api, api.key("reader"), "simple")
    data = json.loads(body)["data"]
    [page] = data["pages"]
    assert 80 < page["confidence"] <= 100
    assert data["confidence"] == {
        "mean": page["confidence"],
        "worst_page": 1,
        "worst_page_confidence": page["confidence"],
    }


@pytest.mark.anyio
async def test_the_schema_lists_the_outputs_and_an_unknown_one_is_refused(
    api: InProcessApi,
) -> None:
    form = api.spec["paths"][OCR]["post"]["requestBody"]["content"]["multipart/form-data"]
    schema = form["schema"]
    if "$ref" in schema:
        schema = api.spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert schema["properties"]["output"]["enum"] == [
        "simple",
        "detailed",
        "searchable_pdf",
        "hocr",
        "alto",
        "markdown",
    ]
    scan = png_bytes(text_image(LINES))
    response = await api.post(
        api.key("guesser"),
        OCR,
        files={"file": ("report.png", scan, "image/png")},
        data={"output": "docx"},
    )
    assert response.status_code == 422, response.text
