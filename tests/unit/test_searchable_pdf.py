"""``output=searchable_pdf``: the scan comes back as a PDF whose invisible text layer holds
the recognised words where they are printed (real Tesseract on a scan made here)."""

from __future__ import annotations

import io
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

from docjobs.domain.models import OcrSimple
from docjobs.runner.engines.searchable_pdf import build
from docjobs.runner.engines.tesseract import extract
from tests.docs import FONTS, pdf_of_images

SCAN_DPI = 200
"""``pdf_of_images`` lays pixels out at this resolution."""
WORDS = {"Invoice": (120, 100), "4711": (900, 100), "Total": (120, 600), "Paid": (900, 600)}
"""Each word and where it is drawn (left, top) in pixels of the scan."""


def scan() -> Image.Image:
    image = Image.new("L", (1400, 800), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONTS["sans"], 44)
    for word, place in WORDS.items():
        draw.text(place, word, font=font, fill=0)
    return image


def words_with_positions(pdf: bytes, page_number: int = 0) -> dict[str, tuple[float, float]]:
    """Each word pypdf extracts, with where its text is placed (PDF points)."""
    found: dict[str, tuple[float, float]] = {}

    def visit(text: str, cm: list[float], tm: list[float], *_: object) -> None:
        for word in text.split():
            # The text matrix within the current transformation: cm only scales and moves.
            found[word] = (tm[4] * cm[0] + cm[4], tm[5] * cm[3] + cm[5])

    PdfReader(io.BytesIO(pdf)).pages[page_number].extract_text(visitor_text=visit)
    return found


def rendered(pdf: bytes) -> bytes:
    document = pdfium.PdfDocument(pdf)
    try:
        return bytes(document[0].render(scale=0.5, grayscale=True).to_pil().tobytes())
    finally:
        document.close()


@pytest.mark.parametrize("rotate", [0, 90])
def test_the_text_layer_holds_the_words_where_they_were_drawn(tmp_path: Path, rotate: int) -> None:
    source = tmp_path / "scan.pdf"
    if rotate:
        # Stored sideways with /Rotate 90, shown upright: the layer must be turned to match.
        sideways = scan().transpose(Image.Transpose.ROTATE_90)
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_of_images([sideways]))))
        writer.pages[0].rotate(90)
        out = io.BytesIO()
        writer.write(out)
        source.write_bytes(out.getvalue())
    else:
        source.write_bytes(pdf_of_images([scan()]))

    output = extract(OcrSimple(output="searchable_pdf"), source, "application/pdf", tmp_path)

    assert output.content_type == "application/pdf"
    assert output.page_count == 1
    reader = PdfReader(output.path)
    # The page looks exactly as before: the layer is invisible.
    assert len(reader.pages) == 1
    assert rendered(output.path.read_bytes()) == rendered(source.read_bytes())
    found = words_with_positions(output.path.read_bytes())
    assert set(WORDS) <= set(found)
    points = 72 / SCAN_DPI
    for word, (left, top) in WORDS.items():
        x, y = found[word]
        if rotate:
            # Shown turned by 90 degrees clockwise: user-space y runs along the shown page,
            # user-space x down from its top.
            x, y = y, x
            from_top = y
        else:
            from_top = 800 * points - y
        assert abs(x - left * points) < 8, word
        # The baseline lies within the glyphs' height (44 px) below where they start.
        assert top * points < from_top < (top + 50) * points, word


def test_a_multi_frame_tiff_becomes_one_page_per_frame_each_with_its_words(
    tmp_path: Path,
) -> None:
    source = tmp_path / "scan.tiff"
    upright = scan()
    # The second frame differs in size: each page must keep its own frame's dimensions.
    frames = [upright, upright.crop((0, 0, 1400, 400)), upright]
    frames[0].save(source, save_all=True, append_images=frames[1:])

    output = extract(OcrSimple(output="searchable_pdf"), source, "image/tiff", tmp_path)

    reader = PdfReader(output.path)
    assert output.page_count == len(reader.pages) == 3
    heights = [round(float(page.mediabox.height)) for page in reader.pages]
    assert heights == [round(800 * 72 / 300), round(400 * 72 / 300), round(800 * 72 / 300)]
    assert set(WORDS) <= set(words_with_positions(output.path.read_bytes(), 2))
    assert {"Invoice", "4711"} <= set(words_with_positions(output.path.read_bytes(), 1))
    assert not {"Total", "Paid"} & set(words_with_positions(output.path.read_bytes(), 1))


def made_up_words(words: dict[str, tuple[int, int]]) -> dict[str, object]:
    """A page as the OCR engines report it: the words' boxes in pixels of a 1400 x 800 scan."""
    boxes = [
        {"text": word, "bbox": {"x": left, "y": top, "width": 27 * len(word), "height": 44}}
        for word, (left, top) in words.items()
    ]
    return {"width": 1400, "height": 800, "words": boxes}


def with_xref_stream(pdf: bytes) -> bytes:
    """``pdf`` updated once by pypdf, which ends the file with a cross-reference stream."""
    writer = PdfWriter(io.BytesIO(pdf), incremental=True)
    writer.add_metadata({"/Title": "Scan"})
    out = io.BytesIO()
    writer.write(out)
    assert b"/XRef" in out.getvalue()[len(pdf) :]
    return out.getvalue()


def page_texts(pdf: bytes) -> list[str]:
    document = pdfium.PdfDocument(pdf)
    try:
        return [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()


def renders(pdf: bytes) -> list[bytes]:
    document = pdfium.PdfDocument(pdf)
    try:
        return [bytes(p.render(scale=0.3, grayscale=True).to_pil().tobytes()) for p in document]
    finally:
        document.close()


@pytest.mark.parametrize("xref", ["table", "stream"])
def test_a_pdf_keeps_its_bytes_and_gains_the_words_of_each_read_page(
    tmp_path: Path, xref: str
) -> None:
    plain = pdf_of_images([scan(), Image.new("L", (1400, 800), 255), scan()])
    original = with_xref_stream(plain) if xref == "stream" else plain
    source = tmp_path / "scan.pdf"
    source.write_bytes(original)
    pages = {1: made_up_words({"Invoice": (120, 100)}), 3: made_up_words(WORDS)}
    target = tmp_path / "searchable.pdf"

    build(source, "application/pdf", pages.get, target)

    output = target.read_bytes()
    # Written as an update: the input is kept byte for byte (signatures stay valid).
    assert output.startswith(original)
    assert len(PdfReader(io.BytesIO(output)).pages) == 3
    assert PdfReader(io.BytesIO(output)).metadata.title == ("Scan" if xref == "stream" else None)
    assert renders(output) == renders(original)
    first, second, third = page_texts(output)
    assert first.split() == ["Invoice"]
    assert second.split() == []  # a page that was not read gets no layer
    assert set(third.split()) == set(WORDS)
