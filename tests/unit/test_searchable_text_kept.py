"""Which pages of a searchable PDF keep the text they carry: one already made searchable
keeps its invisible layer, while a scan carrying only a scanner's stamp gets the OCR's words
(words as the OCR engines report them, laid over PDFs made here)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
import weasyprint
from PIL import Image, ImageDraw, ImageFont

from docjobs.runner.engines import existing_text
from docjobs.runner.engines.searchable_pdf import build
from tests.docs import FONTS, pdf_of_images, png_bytes

WORDS = {"Invoice": (120, 100), "4711": (900, 100), "Total": (120, 600), "Paid": (900, 600)}
"""Each word of the scan and where it is drawn (left, top) in pixels."""


def scan() -> Image.Image:
    image = Image.new("L", (1400, 800), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONTS["sans"], 44)
    for word, place in WORDS.items():
        draw.text(place, word, font=font, fill=0)
    return image


def read_words() -> dict[str, Any]:
    """The scan's page as the OCR engines report it."""
    boxes = [
        {"text": word, "bbox": {"x": left, "y": top, "width": 27 * len(word), "height": 44}}
        for word, (left, top) in WORDS.items()
    ]
    return {"width": 1400, "height": 800, "words": boxes}


def page_words(pdf: Path) -> list[list[str]]:
    document = pdfium.PdfDocument(pdf)
    try:
        return [page.get_textpage().get_text_range().split() for page in document]
    finally:
        document.close()


def test_a_page_made_searchable_before_keeps_its_layer_and_gets_no_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each page read from a fresh opening of the PDF, as every hundredth page is.
    monkeypatch.setattr(existing_text, "PAGES_PER_OPENING", 1)
    source = tmp_path / "scan.pdf"
    source.write_bytes(pdf_of_images([scan(), scan()]))
    once, twice = tmp_path / "once.pdf", tmp_path / "twice.pdf"

    first = build(source, "application/pdf", lambda number: read_words(), once)
    second = build(once, "application/pdf", lambda number: read_words(), twice)

    assert first.view() == {"kept": 0, "added": 2}
    assert second.view() == {"kept": 2, "added": 0, "kept_pages": "1-2"}
    # The layer of the first pass is invisible text, and counts as the page's text.
    assert page_words(twice) == page_words(once) == [list(WORDS)] * 2
    # Nothing to add: the second pass gives back its input (and a line break) unchanged.
    assert twice.read_bytes().rstrip() == once.read_bytes().rstrip()


def test_a_scan_carrying_only_a_stamp_gets_the_recognised_words(tmp_path: Path) -> None:
    image = base64.b64encode(png_bytes(scan())).decode()
    html = (
        '<p style="font: 8pt DejaVu Sans; margin: 0">p. 3</p>'
        f'<img style="width: 100%" src="data:image/png;base64,{image}">'
    )
    source = tmp_path / "stamped.pdf"
    source.write_bytes(weasyprint.HTML(string=html).write_pdf())
    target = tmp_path / "searchable.pdf"

    layers = build(source, "application/pdf", lambda number: read_words(), target)

    assert layers.view() == {"kept": 0, "added": 1}
    assert page_words(target) == [["p.", "3", *WORDS]]
