"""The result of every OCR tier, whichever engine read the pages.

``simple``: ``data.text``, ``data.word_count``, ``data.confidence`` (the summary below)
and each page's text and ``confidence``. ``detailed`` adds per page its size in pixels, its
``words`` (text, confidence 0-100, box in pixels of that size) and the same words grouped as
``blocks`` -> ``lines`` -> ``words``. ``searchable_pdf``: the input as a PDF with the
detailed words as an invisible text layer over each page but those that already carry their
text (details: ``text_layer``); ``hocr``, ``alto`` and ``markdown``: the detailed
pages in those formats (:mod:`.ocr_formats`, :mod:`.ocr_markdown`).

A page's confidence (0-100) is the mean of its words' confidences weighted by their length
in characters, so that a misread long word weighs more than a misread "a"; ``None`` where no
word has one (a blank page; vision models, which give none). The result's summary is the
plain mean over the pages that have one, and the worst of them.

Pages are spooled to the working directory as they are read, and the result file is written
from there: memory holds one page at a time, whatever the document's length.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from docjobs.domain.models import OcrParams
from docjobs.runner.engines import EngineOutput

TIERS = ("tesseract", "doctr", "vision")
"""The tiers a page of the ``auto`` tier may be read by, cheapest first; its summary counts
the pages of each (``pages_by_tier``)."""


@dataclass(frozen=True)
class Word:
    text: str
    confidence: float | None
    """0-100; ``None`` where the engine gives none (vision models)."""
    x: int
    y: int
    width: int
    height: int
    """Pixels of the page image, origin top left."""

    def view(self) -> dict[str, Any]:
        box = {"x": self.x, "y": self.y, "width": self.width, "height": self.height}
        return {"text": self.text, "confidence": self.confidence, "bbox": box}


Line = Sequence[Word]
Block = Sequence[Line]


def page_view(
    number: int, size: tuple[int, int], blocks: Sequence[Block], detailed: bool
) -> dict[str, Any]:
    """One page of the result: lines joined by newlines, blocks by a blank line."""
    text = "\n\n".join("\n".join(" ".join(w.text for w in line) for line in b) for b in blocks)
    page: dict[str, Any] = {
        "page": number,
        "text": text,
        "word_count": len(text.split()),
        "confidence": page_confidence(w for block in blocks for line in block for w in line),
    }
    if detailed:
        page["width"], page["height"] = size
        page["words"] = [word.view() for block in blocks for line in block for word in line]
        page["blocks"] = [
            {
                "bbox": _enclosing([w for line in block for w in line]),
                "lines": [
                    {
                        "text": " ".join(w.text for w in line),
                        "bbox": _enclosing(line),
                        "words": [w.view() for w in line],
                    }
                    for line in block
                ],
            }
            for block in blocks
        ]
    return page


def page_confidence(words: Iterable[Word]) -> float | None:
    """The words' confidences, weighted by their length; ``None`` if none has one."""
    weighted = 0.0
    characters = 0
    for word in words:
        if word.confidence is not None:
            weighted += word.confidence * len(word.text)
            characters += len(word.text)
    return round(weighted / characters, 2) if characters else None


class ConfidenceSummary:
    """The mean of the pages' confidences and the worst page, as pages are added."""

    def __init__(self) -> None:
        self.total = 0.0
        self.pages = 0
        self.worst: tuple[float, int] | None = None
        """(confidence, page number) of the least confident page so far."""

    def add(self, number: int, confidence: float | None) -> None:
        if confidence is None:
            return
        self.total += confidence
        self.pages += 1
        if self.worst is None or confidence < self.worst[0]:
            self.worst = (confidence, number)

    def view(self) -> dict[str, Any] | None:
        if self.worst is None:
            return None
        worst, page = self.worst
        return {
            "mean": round(self.total / self.pages, 2),
            "worst_page": page,
            "worst_page_confidence": worst,
        }


def _enclosing(words: Sequence[Word]) -> dict[str, int]:
    left = min((w.x for w in words), default=0)
    top = min((w.y for w in words), default=0)
    right = max((w.x + w.width for w in words), default=0)
    bottom = max((w.y + w.height for w in words), default=0)
    return {"x": left, "y": top, "width": right - left, "height": bottom - top}


class PageSpool:
    """Result pages kept in a file, one JSON line each, in the order they were added, with
    the page texts (JSON-escaped, ready to join) in a second file and the totals in memory.
    """

    def __init__(self, workdir: Path) -> None:
        self._pages_path = workdir / "pages.jsonl"
        self._text_path = workdir / "pages-text.part"
        self._pages = self._pages_path.open("w+b")
        self._text = self._text_path.open("w+b")
        self._offsets: dict[int, int] = {}
        """Where each page number's line starts in the pages file (searchable PDF)."""
        self.page_count = 0
        self.word_count = 0
        self.confidence = ConfidenceSummary()
        self.pages_by_tier: dict[str, int] = {}
        """Pages per tier that read them, of pages that name one (the ``auto`` tier's)."""

    def __enter__(self) -> PageSpool:
        return self

    def __exit__(self, *_: object) -> None:
        self._pages.close()
        self._text.close()
        self._pages_path.unlink(missing_ok=True)
        self._text_path.unlink(missing_ok=True)

    def add(self, page: dict[str, Any]) -> None:
        if self.page_count:
            self._text.write(b"\\n\\n")  # pages' texts are joined by a blank line
        # A JSON string's escaped content, quotes cut off, concatenates to the escaped whole.
        self._text.write(json.dumps(str(page["text"]), ensure_ascii=False)[1:-1].encode())
        self._offsets[int(page["page"])] = self._pages.seek(0, 2)
        self._pages.write(json.dumps(page, ensure_ascii=False).encode() + b"\n")
        self.page_count += 1
        self.word_count += int(page["word_count"])
        # Parts stored by an older runner have no confidence.
        self.confidence.add(int(page["page"]), page.get("confidence"))
        if (tier := page.get("tier")) is not None:
            if not self.pages_by_tier:
                self.pages_by_tier = dict.fromkeys(TIERS, 0)
            self.pages_by_tier[str(tier)] = self.pages_by_tier.get(str(tier), 0) + 1

    def add_all(self, pages: Iterable[dict[str, Any]]) -> None:
        for page in pages:
            self.add(page)

    def page(self, number: int) -> dict[str, Any] | None:
        """Page ``number`` as it was added, read back from the file; ``None`` if never added."""
        offset = self._offsets.get(number)
        if offset is None:
            return None
        self._pages.seek(offset)
        page: dict[str, Any] = json.loads(self._pages.readline())
        return page

    def write_text(self, out: IO[bytes]) -> None:
        """Every page's text, joined and JSON-escaped (no quotes)."""
        self._text.flush()
        self._text.seek(0)
        shutil.copyfileobj(self._text, out, 1 << 20)

    def write_pages(self, out: IO[bytes]) -> None:
        """The pages as the items of a JSON array (no brackets)."""
        self._pages.flush()
        self._pages.seek(0)
        for index, line in enumerate(self._lines()):
            out.write(b", " + line if index else line)

    def pages(self) -> Iterator[dict[str, Any]]:
        """The pages in the order they were added, read back one at a time."""
        self._pages.flush()
        self._pages.seek(0)
        for line in self._lines():
            page: dict[str, Any] = json.loads(line)
            yield page

    def _lines(self) -> Iterator[bytes]:
        while line := self._pages.readline():
            yield line.rstrip(b"\n")


def finish(
    operation: OcrParams,
    pages: Iterable[dict[str, Any]],
    source: Path,
    content_type: str,
    workdir: Path,
) -> EngineOutput:
    """The job's result from the pages an engine read (detailed unless ``simple``), written
    in ``workdir`` as the pages come."""
    with PageSpool(workdir) as spool:
        spool.add_all(pages)
        return finish_spooled(operation, spool, source, content_type, workdir)


def finish_spooled(
    operation: OcrParams, spool: PageSpool, source: Path, content_type: str, workdir: Path
) -> EngineOutput:
    """The job's result from the pages in ``spool``, written in ``workdir``."""
    confidence = spool.confidence.view()
    details: dict[str, Any] = {
        "word_count": spool.word_count,
        "page_count": spool.page_count,
        "confidence": confidence,
    }
    if spool.pages_by_tier:
        details["pages_by_tier"] = spool.pages_by_tier
    if operation.output == "searchable_pdf":
        from docjobs.runner.engines import searchable_pdf

        target = workdir / "result.pdf"
        layers = searchable_pdf.build(source, content_type, spool.page, target)
        details["text_layer"] = layers.view()
        return EngineOutput(
            path=target,
            content_type="application/pdf",
            extension=".pdf",
            page_count=spool.page_count,
            details=details,
        )
    if operation.output in ("hocr", "alto", "markdown"):
        return _formatted(operation, spool, workdir, details)
    target = workdir / "result.json"
    with target.open("wb") as out:
        # The body json.dumps would give, written in pieces: {"success", "data": {"text",
        # "word_count", "page_count", "confidence", "pages"}}.
        out.write(b'{"success": true, "data": {"text": "')
        spool.write_text(out)
        counts = f'", "word_count": {spool.word_count}, "page_count": {spool.page_count}'
        summary = f', "confidence": {json.dumps(confidence)}'
        if spool.pages_by_tier:
            summary += f', "pages_by_tier": {json.dumps(spool.pages_by_tier)}'
        out.write(counts.encode() + summary.encode() + b', "pages": [')
        spool.write_pages(out)
        out.write(b"]}}")
    return EngineOutput(
        path=target,
        content_type="application/json",
        extension=".json",
        page_count=spool.page_count,
        details=details,
    )


def _formatted(
    operation: OcrParams, spool: PageSpool, workdir: Path, details: dict[str, Any]
) -> EngineOutput:
    from docjobs.runner.engines import ocr_formats, ocr_markdown

    writers: dict[str, tuple[str, str, Callable[[ocr_formats.Pages, IO[bytes]], None]]] = {
        "hocr": (".hocr", ocr_formats.HOCR_CONTENT_TYPE, ocr_formats.write_hocr),
        "alto": (".xml", ocr_formats.ALTO_CONTENT_TYPE, ocr_formats.write_alto),
        "markdown": (".md", ocr_markdown.CONTENT_TYPE, ocr_markdown.write_markdown),
    }
    extension, content_type, write = writers[operation.output]
    pages = ocr_formats.Pages(
        views=spool.pages(),
        count=spool.page_count,
        engine=ocr_formats.ENGINE_NAMES.get(str(getattr(operation, "kind", "")), "OCR"),
    )
    target = workdir / f"result{extension}"
    with target.open("wb") as out:
        write(pages, out)
    return EngineOutput(
        path=target,
        content_type=content_type,
        extension=extension,
        page_count=spool.page_count,
        details=details,
    )
