"""Engines turn one input document into one result, with no knowledge of jobs or storage.

An engine writes its result to a file in the working directory it is given (the attempt's
scratch directory) rather than returning it, so a result of hundreds of pages is never held
in memory whole, and the caller streams it to the object store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docjobs.domain.models import ConvertToPdf, Extract, OcrAdvanced, OcrAuto, OcrSimple, OcrVision


class PermanentError(Exception):
    """The document or the parameters are at fault: retrying cannot help."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class EngineOutput:
    path: Path
    """The result, a file in the engine's working directory."""
    content_type: str
    extension: str
    page_count: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """Small facts for the job status (word count, pages); never the whole result."""


PageProgress = Callable[[int, int], None]
"""Told ``(pages read, pages to read)`` as an engine reads a document page by page."""


class PageCount:
    """The pages an engine has read, told to a :data:`PageProgress` as the count changes:
    once when the selection is known (nothing read yet), then after each page or batch."""

    def __init__(self, report: PageProgress | None) -> None:
        self.report = report
        self.done = 0
        self.total = 0

    def selected(self, total: int) -> None:
        self.total = total
        self._tell()

    def read(self, pages: int = 1) -> None:
        self.done += pages
        self._tell()

    def _tell(self) -> None:
        if self.report is not None:
            self.report(self.done, self.total)


def run(
    operation: ConvertToPdf | OcrSimple | OcrAdvanced | OcrVision | OcrAuto | Extract,
    source: Path,
    content_type: str,
    progress: PageProgress | None = None,
    *,
    workdir: Path,
) -> EngineOutput:
    """Dispatch to the engine of ``operation``; engines import lazily so a worker loads only one.

    Engines that read page by page (OCR) tell ``progress`` how far they are. The result is
    written in ``workdir``."""
    if isinstance(operation, ConvertToPdf) and operation.source_format == "office":
        from docjobs.runner.engines import office

        return office.to_pdf(source, workdir, pdf_variant=operation.pdf_variant)
    if isinstance(operation, ConvertToPdf):
        from docjobs.runner.engines import convert

        return convert.to_pdf(operation, source, workdir)
    if isinstance(operation, OcrSimple):
        from docjobs.runner.engines import tesseract

        return tesseract.extract(operation, source, content_type, workdir, progress)
    if isinstance(operation, OcrAdvanced):
        from docjobs.runner.engines import doctr_ocr

        return doctr_ocr.extract(operation, source, content_type, workdir, progress)
    if isinstance(operation, OcrVision):
        from docjobs.runner.engines import vision

        return vision.extract(operation, source, content_type, workdir)
    if isinstance(operation, OcrAuto):
        from docjobs.runner.engines import ocr_auto, ocr_output

        pages = ocr_auto.read_pages(operation, source, content_type, progress)
        return ocr_output.finish(operation, pages, source, content_type, workdir)
    if isinstance(operation, Extract):
        from docjobs.runner.engines import extract

        return extract.extract(operation, source, content_type, workdir)
    raise PermanentError(
        "NotImplemented", f"operation {operation.kind!r} is not available in this release"
    )


def read_pages(
    operation: OcrSimple | OcrAdvanced | OcrAuto, source: Path, content_type: str
) -> list[dict[str, Any]]:
    """The result pages of ``operation.pages``, for a part of a document read apart."""
    if isinstance(operation, OcrSimple):
        from docjobs.runner.engines import tesseract

        return list(tesseract.read_pages(operation, source, content_type))
    if isinstance(operation, OcrAuto):
        from docjobs.runner.engines import ocr_auto

        return list(ocr_auto.read_pages(operation, source, content_type))
    from docjobs.runner.engines import doctr_ocr

    return list(doctr_ocr.read_pages(operation, source, content_type))
