"""A searchable PDF of a document that already carries text: its text pages keep their own
text and get no second layer, its scanned pages get the OCR's words, and the job says which
(real Tesseract, a page laid out by WeasyPrint beside a scanned page)."""

from __future__ import annotations

import io

import pytest
import weasyprint
from pypdf import PdfReader, PdfWriter

from tests.api.conftest import InProcessApi
from tests.docs import pdf_of_images, recovered, text_image

OCR = "/api/v1/ocr/extract/simple"
TYPED = ["Quarterly", "warehouse", "inventory", "reconciled"]
"""Page 1, laid out as text."""
SCANNED = ["Every shipment arrived on schedule", "The supplier signed the contract"]
"""Page 2, an image of text."""


def typed_then_scanned() -> bytes:
    html = f'<p style="font: 28pt DejaVu Sans">{" ".join(TYPED)}</p>'
    typed = weasyprint.HTML(string=html).write_pdf()
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(typed)))
    writer.append(PdfReader(io.BytesIO(pdf_of_images([text_image(SCANNED)]))))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.anyio
async def test_a_typed_page_keeps_its_text_once_and_a_scanned_page_gains_its_words(
    api: InProcessApi,
) -> None:
    key = api.key("archive")
    response = await api.post(
        key,
        OCR,
        files={"file": ("mixed.pdf", typed_then_scanned(), "application/pdf")},
        data={"output": "searchable_pdf"},
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    typed, scanned = (page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    # Search finds each word of the typed page once: its own text, with no layer over it.
    assert sorted(typed.split()) == sorted(TYPED)
    assert recovered(SCANNED, scanned) >= 0.9
    job = (await api.get(key, f"/api/v1/jobs/{response.headers['X-Job-Id']}")).json()
    assert job["text_layer"] == {"kept": 1, "added": 1, "kept_pages": "1"}
