"""The input document with an invisible text layer: what ``output=searchable_pdf`` returns.

Each recognised word is drawn in text render mode 3 (neither filled nor stroked) over the
place it was read from, so viewers can search and select it while the page looks as it
did. The font is Courier, one of the PDF's standard fonts (no embedding), because every
glyph is 0.6 em wide: horizontal scaling then stretches each word to its box exactly.
Words are written in WinAnsi encoding; characters outside it become ``?``. What the input
would run when opened (JavaScript, launch actions) is left out (:mod:`pdf_actions`). A
page that already carries its text keeps it and gets no layer (:mod:`existing_text`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pypdf import PageObject, PdfReader, PdfWriter
from pypdf.generic import ContentStream, DecodedStreamObject, DictionaryObject, NameObject

from docjobs import documents
from docjobs.runner.engines import existing_text, pdf_actions, pdf_update, raster

FONT = "/DocjobsOcrText"
GLYPH_WIDTH_EM = 0.6
"""Width of every Courier glyph, in ems."""
IMAGE_DPI = 300
"""Resolution given to image pages without one: their PDF page is pixels * 72 / DPI."""

Matrix = tuple[float, float, float, float, float, float]


def build(
    source: Path,
    content_type: str,
    page_of: Callable[[int], dict[str, Any] | None],
    target: Path,
) -> existing_text.TextLayers:
    """Writes to ``target`` the PDF (or the image's frames as PDF pages) with the words of
    each page ``page_of(number)`` gives (``None``: a page that was not read) laid over it,
    but for pages that already carry their text (:mod:`existing_text`), which keep it.
    """
    with source.open("rb") as stream:
        head = stream.read(documents.SNIFF_BYTES)
    is_pdf = documents.sniff_content_type(head, content_type, source.name) == documents.PDF
    layers = existing_text.TextLayers()
    with existing_text.opened(source, is_pdf) as page_text:

        def layer(page: PageObject, number: int) -> bytes | None:
            read = page_of(number)
            if not read or not read.get("words"):
                return None
            if existing_text.keeps_text(page_text.characters(number), read):
                layers.kept.append(number)
                return None
            layers.added.append(number)
            return _text_commands(page, read)

        if is_pdf:
            # Appended as an update: flat in memory, however many pages.
            with source.open("rb") as stream:
                if pdf_update.append_layers(stream, layer, {FONT: font()}, target):
                    return layers
        writer = (
            PdfWriter(clone_from=PdfReader(source)) if is_pdf else _image_pdf(source, content_type)
        )
        pdf_actions.clean_writer(writer)
        for number, page in enumerate(writer.pages, start=1):
            content = layer(page, number)
            if content is not None:
                page.merge_page(_text_layer(page, content))
    writer.write(target)
    return layers


def _image_pdf(source: Path, content_type: str) -> PdfWriter:
    """Every frame as the OCR engines saw it (upright, flattened), one PDF page each.

    Made a frame at a time: only one frame's pixels are in memory, however many there are.
    """
    writer = PdfWriter()
    with raster.open_document(source, content_type) as document:
        for number in range(1, document.page_count + 1):
            page = io.BytesIO()
            document.page(number).image.save(page, "PDF", resolution=IMAGE_DPI)
            writer.append(PdfReader(page))
    return writer


def _text_layer(page: PageObject, content: bytes) -> PageObject:
    layer = PageObject.create_blank_page(
        width=float(page.mediabox.width), height=float(page.mediabox.height)
    )
    layer[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject(FONT): font()})}
    )
    stream = DecodedStreamObject()
    stream.set_data(content)
    layer.replace_contents(ContentStream(stream, None))
    return layer


def font() -> DictionaryObject:
    """Courier in WinAnsi encoding, the font every word is drawn in."""
    return DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Courier"),
            NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
        }
    )


def _text_commands(page: PageObject, read: dict[str, Any]) -> bytes:
    """The content stream drawing the page's words invisibly, in the page's user space."""
    box = page.cropbox
    x0, y0, x1, y1 = (float(v) for v in (box.left, box.bottom, box.right, box.top))
    rotation = int(page.rotation) % 360
    # What a viewer shows (and the engines rendered) is the crop box turned by /Rotate.
    shown_width, shown_height = (y1 - y0, x1 - x0) if rotation in (90, 270) else (x1 - x0, y1 - y0)
    to_page = _shown_to_user_space(rotation, x0, y0, x1, y1)
    scale_x = shown_width / int(read["width"])
    scale_y = shown_height / int(read["height"])
    commands = ["BT", "3 Tr"]
    for word in read["words"]:
        text = str(word["text"])
        bbox = word["bbox"]
        size = max(float(bbox["height"]) * scale_y, 1.0)
        width = max(float(bbox["width"]) * scale_x, 0.1)
        left = float(bbox["x"]) * scale_x
        baseline = shown_height - (float(bbox["y"]) + float(bbox["height"])) * scale_y
        stretch = 100 * width / (GLYPH_WIDTH_EM * size * len(text))
        a, b, c, d, e, f = _times((1, 0, 0, 1, left, baseline), to_page)
        # The trailing space keeps words apart for text extraction.
        encoded = (text + " ").encode("cp1252", errors="replace").hex()
        commands.append(
            f"{FONT} {size:.2f} Tf {stretch:.2f} Tz "
            f"{a:.4f} {b:.4f} {c:.4f} {d:.4f} {e:.2f} {f:.2f} Tm <{encoded}> Tj"
        )
    commands.append("ET")
    return "\n".join(commands).encode("ascii")


def _shown_to_user_space(rotation: int, x0: float, y0: float, x1: float, y1: float) -> Matrix:
    """Maps points of the shown page (origin bottom left, y up) into the page's user space."""
    if rotation == 90:
        return (0, 1, -1, 0, x1, y0)
    if rotation == 180:
        return (-1, 0, 0, -1, x1, y1)
    if rotation == 270:
        return (0, -1, 1, 0, x0, y1)
    return (1, 0, 0, 1, x0, y0)


def _times(m: Matrix, n: Matrix) -> Matrix:
    """``m`` then ``n``, in PDF's row-vector convention."""
    a, b, c, d, e, f = m
    p, q, r, s, t, u = n
    return (
        a * p + b * r,
        a * q + b * s,
        c * p + d * r,
        c * q + d * s,
        e * p + f * r + t,
        e * q + f * s + u,
    )
