"""Tesseract OCR: the text of each selected page, and with ``output="detailed"`` its words.

Each page costs two Tesseract runs: orientation detection (so that scans fed in
sideways come out readable) and recognition. Recognition writes TSV only, and the page
text is rebuilt from it, so the text and the word boxes always come from the same run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytesseract
from PIL import Image

from docjobs.domain.models import OcrSimple
from docjobs.runner.engines import EngineOutput, PermanentError, raster

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
class _Word:
    block: tuple[int, int, int]
    """(block, paragraph, line) the word belongs to."""
    text: str
    confidence: float
    left: int
    top: int
    width: int
    height: int


def extract(operation: OcrSimple, source: Path, content_type: str) -> EngineOutput:
    # Tesseract's OpenMP threads would fight the other runner processes on the node;
    # the child processes pytesseract starts inherit this.
    os.environ["OMP_THREAD_LIMIT"] = "1"
    check_language(operation.language)
    detailed = operation.output == "detailed"
    pages = [
        _recognise(page, operation.language, detailed)
        for page in raster.iter_pages(source, content_type, operation.pages)
    ]
    word_count = sum(int(page["word_count"]) for page in pages)
    body = {
        "success": True,
        "data": {
            "text": "\n\n".join(str(page["text"]) for page in pages),
            "word_count": word_count,
            "page_count": len(pages),
            "pages": pages,
        },
    }
    return EngineOutput(
        data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
        extension=".json",
        page_count=len(pages),
        details={"word_count": word_count, "page_count": len(pages)},
    )


def check_language(language: str) -> None:
    # "osd" is installed alongside but recognises no text.
    installed = set(pytesseract.get_languages()) - {"osd"}
    missing = [name for name in language.split("+") if name not in installed]
    if missing:
        raise PermanentError(
            "UnsupportedLanguage",
            f"Tesseract language {', '.join(missing)} is not installed; "
            f"available: {', '.join(sorted(installed))}.",
        )


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
    text = _text_of(words)
    result: dict[str, Any] = {
        "page": page.number,
        "text": text,
        "word_count": len(text.split()),
    }
    if detailed:
        result["width"], result["height"] = image.size
        result["words"] = [
            {
                "text": word.text,
                "confidence": word.confidence,
                "bbox": {"x": word.left, "y": word.top, "width": word.width, "height": word.height},
            }
            for word in words
        ]
    return result


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


def _reads_well(words: list[_Word]) -> bool:
    confidences = sorted(w.confidence for w in words)
    return len(confidences) >= 3 and confidences[len(confidences) // 2] >= WELL_READ_CONFIDENCE


def read_words(image: Image.Image, number: int, language: str, config: str) -> list[_Word]:
    """Tesseract's words on page ``number``; a failure of the document's is permanent."""
    try:
        tsv = pytesseract.image_to_data(image, lang=language, config=config)
    except pytesseract.TesseractError as exc:
        if exc.status < 0:
            raise  # killed by a signal (out of memory, deadline): worth another attempt
        raise PermanentError(
            "OcrFailed", f"Tesseract failed on page {number}: {exc.message}"
        ) from None
    return _parse_tsv(tsv)


def _parse_tsv(tsv: str) -> list[_Word]:
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
            _Word(
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


def _text_of(words: list[_Word]) -> str:
    """Words joined as Tesseract's text output does: lines by newlines, paragraphs by a
    blank line."""
    parts: list[str] = []
    previous: tuple[int, int, int] | None = None
    for word in words:
        if previous is not None:
            if word.block[:2] != previous[:2]:
                parts.append("\n\n")
            elif word.block != previous:
                parts.append("\n")
            else:
                parts.append(" ")
        parts.append(word.text)
        previous = word.block
    return "".join(parts)
