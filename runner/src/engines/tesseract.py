"""Tesseract OCR: the text of each selected page, and with ``output="detailed"`` its words.

Each page costs two Tesseract runs: orientation detection (so that scans fed in
sideways come out readable) and recognition. Recognition writes TSV only, and the page
text is rebuilt from it, so the text and the word boxes always come from the same run.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import pytesseract
from PIL import Image

from docjobs.config import get_settings
from docjobs.domain.models import OcrSimple
from docjobs.languages import UnsupportedLanguage, tesseract_languages
from docjobs.runner import limits
from docjobs.runner.engines import (
    EngineOutput,
    PageCount,
    PageProgress,
    PermanentError,
    ocr_output,
    raster,
)

RECOGNITION_CONFIG = "--oem 1 --psm 3"
"""LSTM recogniser; fully automatic page segmentation, which finds columns and reads
each one top to bottom instead of across the gutter."""
WELL_READ_CONFIDENCE = 75.0
"""Median word confidence (0-100) above which a page is taken to be upright; a turned page
reads as short fragments around 30-50."""
MIN_ORIENTATION_CONFIDENCE = 5.0
"""Below this, OSD guesses on little text; turning an upright page over ruins it."""
_TRANSPOSE_FOR = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}
"""OSD's "Rotate: n" means turn n degrees clockwise; Pillow's ROTATE_n turn anticlockwise."""


@dataclass(frozen=True)
class Word:
    """One word as Tesseract's TSV gives it."""

    block: tuple[int, int, int]
    """(block, paragraph, line) the word belongs to."""
    text: str
    confidence: float
    left: int
    top: int
    width: int
    height: int


def extract(
    operation: OcrSimple,
    source: Path,
    content_type: str,
    workdir: Path,
    progress: PageProgress | None = None,
) -> EngineOutput:
    pages = read_pages(operation, source, content_type, progress)
    return ocr_output.finish(operation, pages, source, content_type, workdir)


def read_pages(
    operation: OcrSimple, source: Path, content_type: str, progress: PageProgress | None = None
) -> Iterator[dict[str, Any]]:
    """Each selected page's result as soon as it is read."""
    # Tesseract's OpenMP threads would fight the other runner processes on the node;
    # the child processes pytesseract starts inherit this.
    os.environ["OMP_THREAD_LIMIT"] = "1"
    language = check_language(operation.language)
    detailed = operation.output != "simple"
    count = PageCount(progress)
    for page in raster.iter_pages(source, content_type, operation.pages, count.selected):
        read = _recognise(page, language, detailed)
        count.read()
        yield read


def read_page(page: raster.Page, language: str, detailed: bool) -> dict[str, Any]:
    """One page's result; ``language`` as :func:`check_language` gives it."""
    return _recognise(page, language, detailed)


def check_language(hint: str) -> str:
    """Tesseract's codes for ``hint`` ("eng", "fr-FR", "english"), from what is installed
    here: the API may have translated it without a Tesseract of its own to ask."""
    # "osd" is installed alongside but recognises no text.
    installed = set(pytesseract.get_languages()) - {"osd"}
    try:
        return tesseract_languages(hint, installed)
    except UnsupportedLanguage as exc:
        raise PermanentError("UnsupportedLanguage", str(exc)) from None


def _recognise(page: raster.Page, language: str, detailed: bool) -> dict[str, Any]:
    dpi = f" --dpi {page.dpi}" if page.dpi else ""
    image = page.image
    words = read_words(image, page.number, language, RECOGNITION_CONFIG + dpi)
    if not _reads_well(words):
        # Orientation detection costs as much as recognition: pay it only when the page
        # did not read well as it is, which is what a turned page looks like.
        turned = upright(image, dpi)
        if turned is not image:
            image = turned
            words = read_words(image, page.number, language, RECOGNITION_CONFIG + dpi)
    # A paragraph is a block of the result: paragraphs are what a blank line separates.
    blocks = [
        [
            [ocr_output.Word(w.text, w.confidence, w.left, w.top, w.width, w.height) for w in line]
            for _, line in groupby(paragraph, key=lambda w: w.block)
        ]
        for _, paragraph in groupby(words, key=lambda w: w.block[:2])
    ]
    return ocr_output.page_view(page.number, image.size, blocks, detailed)


def upright(image: Image.Image, dpi: str) -> Image.Image:
    try:
        osd = pytesseract.image_to_osd(image, config=dpi, output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractError:
        # OSD gives up on pages with too few characters (blank, photo, a single line).
        return image
    transpose = _TRANSPOSE_FOR.get(int(osd.get("rotate", 0)))
    if transpose is None or float(osd.get("orientation_conf", 0.0)) < MIN_ORIENTATION_CONFIDENCE:
        return image
    return image.transpose(transpose)


def _reads_well(words: list[Word]) -> bool:
    confidences = sorted(w.confidence for w in words)
    return len(confidences) >= 3 and confidences[len(confidences) // 2] >= WELL_READ_CONFIDENCE


def read_words(image: Image.Image, number: int, language: str, config: str) -> list[Word]:
    """Tesseract's words on page ``number``; a failure of the document's is permanent."""
    try:
        tsv = pytesseract.image_to_data(image, lang=language, config=config)
    except pytesseract.TesseractError as exc:
        # Tesseract runs under the limits the runner inherited: it aborts when refused
        # memory at the data limit, and the kernel stops it past the CPU limit.
        if exc.status == -signal.SIGABRT:
            raise limits.memory_exceeded() from None
        if exc.status == -signal.SIGXCPU:
            raise limits.CpuCeilingExceeded(get_settings().ceilings.attempt_cpu_seconds) from None
        if exc.status < 0:
            raise  # killed by another signal (the deadline): worth another attempt
        raise PermanentError(
            "OcrFailed", f"Tesseract failed on page {number}: {exc.message}"
        ) from None
    return _parse_tsv(tsv)


def _parse_tsv(tsv: str) -> list[Word]:
    """Recognised words from Tesseract's TSV, in reading order; empty boxes are dropped."""
    lines = tsv.splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    words = []
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=False))
        text = row.get("text", "").strip()
        confidence = float(row.get("conf", "-1"))
        if row.get("level") != "5" or not text or confidence < 0:
            continue
        words.append(
            Word(
                block=(int(row["block_num"]), int(row["par_num"]), int(row["line_num"])),
                text=text,
                confidence=round(confidence, 2),
                left=int(row["left"]),
                top=int(row["top"]),
                width=int(row["width"]),
                height=int(row["height"]),
            )
        )
    return words
