"""Engines turn one input document into one result, with no knowledge of jobs or storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docjobs.domain.models import ConvertToPdf, Extract, OcrAdvanced, OcrSimple, OcrVision


class PermanentError(Exception):
    """The document or the parameters are at fault: retrying cannot help."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class EngineOutput:
    data: bytes
    content_type: str
    extension: str
    page_count: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """Small facts for the job status (word count, pages); never the whole result."""


def run(
    operation: ConvertToPdf | OcrSimple | OcrAdvanced | OcrVision | Extract,
    source: Path,
    content_type: str,
) -> EngineOutput:
    """Dispatch to the engine of ``operation``; engines import lazily so a worker loads only one."""
    if isinstance(operation, ConvertToPdf):
        from docjobs.runner.engines import convert

        return convert.to_pdf(operation, source)
    if isinstance(operation, OcrSimple):
        from docjobs.runner.engines import tesseract

        return tesseract.extract(operation, source, content_type)
    if isinstance(operation, OcrAdvanced):
        from docjobs.runner.engines import doctr_ocr

        return doctr_ocr.extract(operation, source, content_type)
    if isinstance(operation, OcrVision):
        from docjobs.runner.engines import vision

        return vision.extract(operation, source, content_type)
    if isinstance(operation, Extract):
        from docjobs.runner.engines import extract

        return extract.extract(operation, source, content_type)
    raise PermanentError(
        "NotImplemented", f"operation {operation.kind!r} is not available in this release"
    )


def read_pages(
    operation: OcrSimple | OcrAdvanced, source: Path, content_type: str
) -> list[dict[str, Any]]:
    """The result pages of ``operation.pages``, for a part of a document read apart."""
    if isinstance(operation, OcrSimple):
        from docjobs.runner.engines import tesseract

        return tesseract.read_pages(operation, source, content_type)
    from docjobs.runner.engines import doctr_ocr

    return doctr_ocr.read_pages(operation, source, content_type)
