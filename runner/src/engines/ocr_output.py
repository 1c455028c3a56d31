"""The result of every OCR tier, whichever engine read the pages.

``simple``: ``data.text``, ``data.word_count`` and each page's text. ``detailed`` adds per
page its size in pixels, its ``words`` (text, confidence 0-100, box in pixels of that size)
and the same words grouped as ``blocks`` -> ``lines`` -> ``words``. ``searchable_pdf``: the
input as a PDF with the detailed words as an invisible text layer.

Pages are spooled to the working directory as they are read, and the result file is written
from there: memory holds one page at a time, whatever the document's length.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from docjobs.domain.models import OcrParams
from docjobs.runner.engines import EngineOutput


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
    page: dict[str, Any] = {"page": number, "text": text, "word_count": len(text.split())}
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
    details = {"word_count": spool.word_count, "page_count": spool.page_count}
    if operation.output == "searchable_pdf":
        from docjobs.runner.engines import searchable_pdf

        target = workdir / "result.pdf"
        searchable_pdf.build(source, content_type, spool.page, target)
        return EngineOutput(
            path=target,
            content_type="application/pdf",
            extension=".pdf",
            page_count=spool.page_count,
            details=details,
        )
    target = workdir / "result.json"
    with target.open("wb") as out:
        # The body json.dumps would give, written in pieces: {"success", "data": {"text",
        # "word_count", "page_count", "pages"}}.
        out.write(b'{"success": true, "data": {"text": "')
        spool.write_text(out)
        counts = f'", "word_count": {spool.word_count}, "page_count": {spool.page_count}'
        out.write(counts.encode() + b', "pages": [')
        spool.write_pages(out)
        out.write(b"]}}")
    return EngineOutput(
        path=target,
        content_type="application/json",
        extension=".json",
        page_count=spool.page_count,
        details=details,
    )
