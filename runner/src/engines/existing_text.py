"""The text a PDF's pages already carry, and whether a searchable PDF keeps it.

A page made from text (a born-digital PDF) or already made searchable (an invisible text
layer, render mode 3, which PDFium extracts like any other) keeps its text and gets no
second layer, as OCRmyPDF's ``--skip-text`` does: a second layer would make every search hit
twice and every copy give the text twice. A page keeps its text when the characters PDFium
extracts from it (whitespace, control characters and unmapped glyphs left out) number at
least :data:`COVERAGE` of those the OCR read there. The share, rather than "any text at
all", still lays the OCR's words over a scan that carries only a stamp or a page number
from the scanner, and over a page whose glyphs map to no characters (nothing to search).

Each page is loaded and its text extracted without rendering, only for pages the OCR read
words on: a few milliseconds for a page full of text, a fraction of what rendering it for
the OCR cost, and memory stays flat (:data:`PAGES_PER_OPENING`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pypdfium2 as pdfium

COVERAGE = 0.5
"""Share of the OCR's characters a page's own text must hold for the page to keep it."""
PAGES_PER_OPENING = 100
"""Pages read before the PDF is opened afresh: PDFium keeps every loaded page's objects
(image data included) until the document is closed."""
MAX_PAGE_LIST = 500
"""Longest ``kept_pages`` list (characters) the details carry; a longer one is left out,
so that it never crowds the job's other details out of the runner's 4 KB summary."""


class PageText(Protocol):
    def characters(self, number: int) -> int:
        """How many searchable characters page ``number`` (1-based) already carries."""
        ...


class _NoText:
    def characters(self, number: int) -> int:
        return 0


class _PdfText:
    def __init__(self, source: Path) -> None:
        self._source = source
        self._document = pdfium.PdfDocument(source)
        self._loaded = 0

    def characters(self, number: int) -> int:
        if self._loaded == PAGES_PER_OPENING:
            self.close()
            self._document = pdfium.PdfDocument(self._source)
        self._loaded += 1
        try:
            page = self._document[number - 1]
        except pdfium.PdfiumError:
            return 0
        try:
            text = page.get_textpage()
            try:
                return searchable_characters(text.get_text_range())
            finally:
                text.close()
        except pdfium.PdfiumError:
            return 0
        finally:
            page.close()

    def close(self) -> None:
        self._document.close()
        self._loaded = 0


@contextmanager
def opened(source: Path, is_pdf: bool) -> Iterator[PageText]:
    """The text of ``source``'s pages; none for an image, or a PDF PDFium cannot open."""
    if not is_pdf:
        yield _NoText()
        return
    try:
        text = _PdfText(source)
    except pdfium.PdfiumError:
        yield _NoText()
        return
    try:
        yield text
    finally:
        text.close()


def searchable_characters(text: str) -> int:
    """Characters a search could match: neither whitespace, control nor U+FFFD (a glyph
    that maps to no character)."""
    return sum(1 for c in text if c.isprintable() and not c.isspace() and c != "\ufffd")


def recognised_characters(read: Mapping[str, Any]) -> int:
    """Characters of the words the OCR read on a page (its page view)."""
    return sum(searchable_characters(str(word["text"])) for word in read.get("words") or ())


def keeps_text(existing: int, read: Mapping[str, Any]) -> bool:
    """Whether a page with ``existing`` characters of its own keeps them instead of
    getting the OCR's words of ``read``."""
    return existing > 0 and existing >= COVERAGE * recognised_characters(read)


@dataclass
class TextLayers:
    """Which read pages kept their own text and which got the OCR's words."""

    kept: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        """``{"kept": 2, "added": 5, "kept_pages": "1-2"}``: counts of pages, and the pages
        that kept their text in the ``pages`` parameter's syntax (left out when none or
        long)."""
        summary: dict[str, Any] = {"kept": len(self.kept), "added": len(self.added)}
        pages = page_ranges(self.kept)
        if pages and len(pages) <= MAX_PAGE_LIST:
            summary["kept_pages"] = pages
        return summary


def page_ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 5]`` as ``"1-3,5"``."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and runs[-1][1] + 1 == number:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
