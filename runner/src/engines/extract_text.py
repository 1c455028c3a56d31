"""The text of a document as lines of cells, from the PDF text layer or from OCR.

Extraction needs more than a string: a label and its value sit in one line or one above
the other, and a table's columns are told apart by where their text is. So every page
becomes :class:`Line` objects, each a row of :class:`Cell` runs separated by wide gaps
(table columns, label and value columns), with their horizontal positions kept.

A PDF page with a text layer is read as it is; a page without one (a scan) and an image
are read by the chosen OCR tier: Tesseract (with the OCR engine's orientation fix and word
parsing), docTR or a vision language model.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

from docjobs import documents
from docjobs.config import get_settings
from docjobs.runner.engines import ocr_output, raster, tesseract
from docjobs.templates.schema import OcrTier

MIN_TEXT_CHARACTERS = 16
"""Non-blank characters below which a PDF page counts as a scan: a page number or a
stamp laid over a scanned page is not its text."""
CELL_GAP = 0.8
"""A horizontal gap wider than this many text heights starts a new cell; word spaces are
about 0.3, gaps between table columns well above 1."""
RECOGNITION_CONFIG = "--oem 1 --psm 4"
"""One column of lines of varying size: a table row stays one row, and a lone short cell
(a quantity "1") is kept, where automatic segmentation (psm 3, the OCR engine's choice
for reading order) drops it as noise. Layout is rebuilt from the word boxes anyway."""
IMAGE_LONG_EDGE = 1568
"""Pixels; page images for a language model are scaled down to this (Claude's own limit
before it rescales)."""


@dataclass(frozen=True)
class Box:
    """A piece of text and where it is; y grows downwards, units are the page's own."""

    text: str
    left: float
    top: float
    right: float
    bottom: float

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def height(self) -> float:
        return self.bottom - self.top


@dataclass(frozen=True)
class Cell:
    text: str
    left: float
    right: float
    parts: tuple[Box, ...]
    """The recognised words (OCR) or text runs (PDF) the cell was made of."""


@dataclass(frozen=True)
class Line:
    page: int
    top: float
    bottom: float
    cells: tuple[Cell, ...]

    @property
    def text(self) -> str:
        return " ".join(cell.text for cell in self.cells)

    def words(self) -> list[Box]:
        """Single words with their horizontal extent, estimated within a text run."""
        words: list[Box] = []
        for cell in self.cells:
            for part in cell.parts:
                words.extend(_split_words(part))
        return words


@dataclass(frozen=True)
class Page:
    number: int
    lines: tuple[Line, ...]
    ocr: bool
    """The page had no text layer and was read by OCR."""
    image: Image.Image | None = None
    """The scanned page, scaled down, when the caller asked for images."""
    tier: str | None = None
    """Of a page read by the ``auto`` tier: the tier whose words it kept."""


@dataclass(frozen=True)
class DocumentText:
    pages: tuple[Page, ...]

    @property
    def lines(self) -> list[Line]:
        return [line for page in self.pages for line in page.lines]

    @property
    def image_only(self) -> bool:
        return all(page.ocr for page in self.pages)

    def page_text(self, page: Page) -> str:
        return "\n".join(line.text for line in page.lines)


def read(
    source: Path, content_type: str, language: str, keep_images: int = 0, ocr: OcrTier = "simple"
) -> DocumentText:
    """Lines of every page, scans read by the ``ocr`` tier; the images of the first
    ``keep_images`` scanned pages are kept."""
    with source.open("rb") as stream:
        kind = documents.sniff_content_type(
            stream.read(documents.SNIFF_BYTES), content_type, source.name
        )
    reader = _Reader(language, keep_images, ocr)
    # raster checks the document (type, password, damage, size) before anything is read.
    with raster.open_document(source, content_type) as document:
        numbers = range(1, document.page_count + 1)
        if kind != documents.PDF:
            return DocumentText(tuple(reader.scanned(document.page(n)) for n in numbers))
        pdf = pdfium.PdfDocument(source)
        try:
            pages = []
            for number in numbers:
                boxes = _text_layer(pdf, number)
                if boxes is None:
                    pages.append(reader.scanned(document.page(number)))
                else:
                    pages.append(Page(number, lines_of(boxes, number), ocr=False))
        finally:
            pdf.close()
    return DocumentText(tuple(pages))


class _Reader:
    def __init__(self, language: str, keep_images: int, ocr: OcrTier) -> None:
        self._language = language
        self._images_left = keep_images
        self._ocr = ocr
        self._checked = False

    def scanned(self, page: raster.Page) -> Page:
        tier = None
        if self._ocr == "simple":
            upright, boxes = self._tesseract(page)
        elif self._ocr == "auto":
            upright, tier, boxes = self._auto(page)
        else:
            upright = page.image
            boxes = [
                Box(w.text, w.x, w.y, w.x + w.width, w.y + w.height)
                for w in _tier_words(self._ocr, upright, self._language)
                if w.text.strip()
            ]
        image = None
        if self._images_left > 0:
            self._images_left -= 1
            image = upright.copy()
            image.thumbnail((IMAGE_LONG_EDGE, IMAGE_LONG_EDGE))
        return Page(page.number, lines_of(boxes, page.number), ocr=True, image=image, tier=tier)

    def _auto(self, page: raster.Page) -> tuple[Image.Image, str, list[Box]]:
        """Tesseract's words, or a stronger tier's where Tesseract reads the page badly."""
        from docjobs.runner.engines import ocr_auto

        upright, read = self._tesseract_words(page)
        first = [
            ocr_output.Word(w.text, w.confidence, w.left, w.top, w.width, w.height) for w in read
        ]
        tier, words = ocr_auto.page_words(upright, self._language, first, get_settings())
        boxes = [Box(w.text, w.x, w.y, w.x + w.width, w.y + w.height) for w in words]
        return upright, tier, [box for box in boxes if box.text.strip()]

    def _tesseract(self, page: raster.Page) -> tuple[Image.Image, list[Box]]:
        upright, words = self._tesseract_words(page)
        return upright, [
            Box(w.text, w.left, w.top, w.left + w.width, w.top + w.height) for w in words
        ]

    def _tesseract_words(self, page: raster.Page) -> tuple[Image.Image, list[tesseract.Word]]:
        if not self._checked:
            # Tesseract's OpenMP threads would fight the node's other runners; its child
            # processes inherit this.
            os.environ["OMP_THREAD_LIMIT"] = "1"
            self._language = tesseract.check_language(self._language)
            self._checked = True
        dpi = f" --dpi {page.dpi}" if page.dpi else ""
        upright = tesseract.upright(page.image, dpi)
        config = RECOGNITION_CONFIG + dpi
        return upright, tesseract.read_words(upright, page.number, self._language, config)


def _tier_words(ocr: OcrTier, image: Image.Image, language: str) -> list[ocr_output.Word]:
    """The words of a scanned page as docTR or the vision model reads them; imported on
    use, so a Tesseract runner never loads torch or the model client."""
    if ocr == "advanced":
        from docjobs.runner.engines import doctr_ocr

        return doctr_ocr.read_words(image)
    from docjobs.runner.engines import vision

    return vision.read_words(image, language)


def _text_layer(pdf: pdfium.PdfDocument, number: int) -> list[Box] | None:
    """The page's text runs, or ``None`` when it has (almost) no text layer."""
    page = pdf[number - 1]
    try:
        textpage = page.get_textpage()
        try:
            if len(re.sub(r"\s", "", textpage.get_text_bounded())) < MIN_TEXT_CHARACTERS:
                return None
            height = page.get_height()
            boxes = []
            # PDFium's text rectangles are runs of text with no wide gap, one line each.
            for index in range(textpage.count_rects()):
                left, bottom, right, top = textpage.get_rect(index)
                text = " ".join(textpage.get_text_bounded(left, bottom, right, top).split())
                if text:
                    boxes.append(Box(text, left, height - top, right, height - bottom))
            return boxes
        finally:
            textpage.close()
    finally:
        page.close()


def lines_of(boxes: Iterable[Box], page: int) -> tuple[Line, ...]:
    """Group boxes into lines (by vertical position), each split into cells at wide gaps."""
    rows: list[list[Box]] = []
    for box in sorted(boxes, key=lambda box: box.middle):
        if rows and _same_row(rows[-1], box):
            rows[-1].append(box)
        else:
            rows.append([box])
    return tuple(_line(row, page) for row in rows)


def _same_row(row: list[Box], box: Box) -> bool:
    middle = statistics.fmean(member.middle for member in row)
    height = min(statistics.median(member.height for member in row), box.height)
    return abs(box.middle - middle) <= height / 2


def _line(row: list[Box], page: int) -> Line:
    row.sort(key=lambda box: box.left)
    gap = CELL_GAP * statistics.median(box.height for box in row)
    groups: list[list[Box]] = []
    for box in row:
        if groups and box.left - groups[-1][-1].right <= gap:
            groups[-1].append(box)
        else:
            groups.append([box])
    cells = tuple(
        Cell(" ".join(box.text for box in group), group[0].left, group[-1].right, tuple(group))
        for group in groups
    )
    return Line(page, min(box.top for box in row), max(box.bottom for box in row), cells)


def _split_words(part: Box) -> Iterator[Box]:
    width = (part.right - part.left) / max(len(part.text), 1)
    for match in re.finditer(r"\S+", part.text):
        yield Box(
            match[0],
            part.left + match.start() * width,
            part.top,
            part.left + match.end() * width,
            part.bottom,
        )
