"""The OCR result written to a file page by page reads back as the whole result would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docjobs.domain.models import OcrSimple
from docjobs.runner.engines import ocr_output


def page(number: int, text: str) -> dict[str, Any]:
    return {"page": number, "text": text, "word_count": len(text.split())}


def test_texts_that_need_escaping_survive_the_streamed_result(tmp_path: Path) -> None:
    pages = [
        page(1, 'He said "stop"\nthen\tleft \\ back'),
        page(2, "Straße, naïve, 東京, emoji 🙂"),
        page(3, ""),
    ]
    output = ocr_output.finish(OcrSimple(), iter(pages), tmp_path / "input", "", tmp_path)

    assert json.loads(output.path.read_bytes()) == {
        "success": True,
        "data": {
            "text": "\n\n".join(p["text"] for p in pages),
            "word_count": 12,
            "page_count": 3,
            "confidence": None,
            "pages": pages,
        },
    }
    details = {"word_count": 12, "page_count": 3, "confidence": None}
    assert (output.page_count, output.details) == (3, details)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"], "spool left behind"


def test_a_document_with_no_pages_read_is_still_a_valid_result(tmp_path: Path) -> None:
    output = ocr_output.finish(OcrSimple(), iter([]), tmp_path / "input", "", tmp_path)
    data = json.loads(output.path.read_bytes())["data"]
    assert data == {
        "text": "",
        "word_count": 0,
        "page_count": 0,
        "confidence": None,
        "pages": [],
    }
