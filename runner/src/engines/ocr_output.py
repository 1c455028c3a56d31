"""The result of every OCR tier, whichever engine read the pages.

``simple``: ``data.text``, ``data.word_count`` and each page's text. ``detailed`` adds per
page its size in pixels, its ``words`` (text, confidence 0-100, box in pixels of that size)
and the same words grouped as ``blocks`` -> ``lines`` -> ``words``. ``searchable_pdf``: the
input as a PDF with the detailed words as an invisible text layer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def finish(
    operation: OcrParams, pages: list[dict[str, Any]], source: Path, content_type: str
) -> EngineOutput:
    """The job's result from the pages an engine read (detailed unless ``simple``)."""
    word_count = sum(int(page["word_count"]) for page in pages)
    details = {"word_count": word_count, "page_count": len(pages)}
    if operation.output == "searchable_pdf":
        from docjobs.runner.engines import searchable_pdf

        return EngineOutput(
            data=searchable_pdf.build(source, content_type, pages),
            content_type="application/pdf",
            extension=".pdf",
            page_count=len(pages),
            details=details,
        )
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
        details=details,
    )
