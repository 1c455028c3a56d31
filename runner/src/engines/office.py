"""Convert Office documents to PDF with LibreOffice, headless, one LibreOffice per worker.

The document is untrusted, and LibreOffice can run its macros and fetch what it links to
(images, OLE links, external data). Its type is read from its content again and a zip is
unpacked against the ceilings before LibreOffice sees it. The conversion itself runs in the
worker's LibreOffice, kept running across documents (:mod:`.office_process`): macros never
run, links are never updated, the profile is the worker's own, the network is out of reach
where the kernel allows, and a document past ``office.timeout_seconds`` has the whole
LibreOffice killed (``OfficeTimeout``) while the worker goes on with a new one.

A ``pdf_variant`` is LibreOffice's own PDF/A or PDF/UA export (the PDF export filter of the
document's family, with its filter options). PDF/UA is for text documents only, the only
ones LibreOffice tags; it needs a title, which LibreOffice takes from the document's
properties: an untitled document gets the first line of its text, as the other conversions
do.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.sax.saxutils import escape

from pypdf import PdfReader, PdfWriter
from pypdf.generic import BooleanObject, DictionaryObject, NameObject

from docjobs.config import Settings, get_settings
from docjobs.documents import DocumentError
from docjobs.domain.models import PdfVariant
from docjobs.office_files import (
    ZIP_MAGIC,
    OfficeFormat,
    UnpackCeilings,
    check_unpacked,
    check_variant,
    detect,
)
from docjobs.runner.engines import EngineOutput, PermanentError, office_process
from docjobs.runner.engines.office_process import TIMEOUT_SETTING as TIMEOUT_SETTING
from docjobs.runner.engines.office_process import OfficeFailed
from docjobs.runner.engines.office_sandbox import profile_dir as profile_dir

_EXPORT_FILTERS = {
    "text": "writer_pdf_Export",
    "spreadsheet": "calc_pdf_Export",
    "presentation": "impress_pdf_Export",
}
_VARIANT_OPTIONS: dict[PdfVariant, dict[str, dict[str, str]]] = {
    "pdf/a-2b": {"SelectPdfVersion": {"type": "long", "value": "2"}},
    "pdf/a-3b": {"SelectPdfVersion": {"type": "long", "value": "3"}},
    "pdf/ua-1": {"PDFUACompliance": {"type": "boolean", "value": "true"}},
}
_TITLE_CHARS = 120


def to_pdf(
    source: Path,
    workdir: Path,
    settings: Settings | None = None,
    *,
    pdf_variant: PdfVariant | None = None,
) -> EngineOutput:
    """``source`` as a PDF in ``workdir``, conforming to ``pdf_variant`` when given; its type
    is read from its content again, since a job need not have come through the API."""
    settings = settings or get_settings()
    office = settings.office
    ceilings = UnpackCeilings(office.max_unpacked_mb * 1024 * 1024, office.max_entries)
    try:
        found = detect(source, None, ceilings)
        check_variant(found, pdf_variant)
        with source.open("rb") as stream:
            if stream.read(len(ZIP_MAGIC)) == ZIP_MAGIC:
                check_unpacked(source, ceilings)
    except DocumentError as exc:
        raise PermanentError(_reason(exc.code), exc.message) from None
    document = workdir / f"document.{found.extension}"
    shutil.copyfile(source, document)
    target = workdir / "document.pdf"
    convert(document, target, found, pdf_variant, settings)
    if pdf_variant == "pdf/ua-1":
        _ensure_title(target)
    page_count = _page_count(target, settings.ceilings.max_convert_pages)
    return EngineOutput(
        path=target,
        content_type="application/pdf",
        extension=".pdf",
        page_count=page_count,
        details={"page_count": page_count, "source_type": found.extension},
    )


def convert(
    document: Path,
    target: Path,
    found: OfficeFormat,
    pdf_variant: PdfVariant | None,
    settings: Settings,
) -> None:
    """``document`` (of the format ``found``) as the PDF ``target``, by LibreOffice, within
    ``office.timeout_seconds``; a document LibreOffice fails on is a permanent failure."""
    options = _VARIANT_OPTIONS[pdf_variant] if pdf_variant is not None else {}
    try:
        office_process.convert(document, target, _EXPORT_FILTERS[found.family], options, settings)
    except OfficeFailed:
        limit = settings.office.max_output_mb * 1024 * 1024
        if target.exists() and target.stat().st_size >= limit:
            # The file-size limit stopped LibreOffice at the ceiling's exact size.
            raise PermanentError(
                "OutputTooLarge",
                f"The PDF grew past the ceiling of {settings.office.max_output_mb} MiB"
                " (DOCJOBS_OFFICE__MAX_OUTPUT_MB).",
            ) from None
        raise PermanentError(
            "UnreadableDocument", f"LibreOffice could not open the .{found.extension} document."
        ) from None
    if not target.exists():
        raise PermanentError(
            "UnreadableDocument", f"LibreOffice could not open the .{found.extension} document."
        )


def _ensure_title(pdf: Path) -> None:
    """Titles an untitled PDF/UA file (``dc:title``, the info dictionary, shown as the
    window's title) with the first line of its text; one with a title is left untouched."""
    reader = PdfReader(pdf)
    if reader.metadata is not None and reader.metadata.title:
        return
    text = reader.pages[0].extract_text() if reader.pages else ""
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = first_line[:_TITLE_CHARS] or "Document"
    writer = PdfWriter(clone_from=reader)
    writer.add_metadata({"/Title": title})
    preferences = writer.root_object.get("/ViewerPreferences")
    if not isinstance(preferences, DictionaryObject):
        preferences = DictionaryObject()
        writer.root_object[NameObject("/ViewerPreferences")] = preferences
    preferences[NameObject("/DisplayDocTitle")] = BooleanObject(True)
    xmp = reader.xmp_metadata
    if xmp is not None:
        packet = xmp.stream.get_data().decode("utf-8")
        described = (
            '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{escape(title)}</rdf:li>'
            "</rdf:Alt></dc:title></rdf:Description>\n"
        )
        writer.xmp_metadata = packet.replace("</rdf:RDF>", described + "</rdf:RDF>", 1).encode()
    writer.write(pdf)


def _page_count(pdf: Path, ceiling: int) -> int:
    pages = len(PdfReader(pdf).pages)
    if pages > ceiling:
        raise PermanentError(
            "TooManyPages",
            f"The document lays out {pages} pages, more than the ceiling of {ceiling}"
            " (DOCJOBS_CEILINGS__MAX_CONVERT_PAGES).",
        )
    return pages


def _reason(code: str) -> str:
    """``document_too_complex`` as the runner's ``DocumentTooComplex``."""
    return "".join(word.capitalize() for word in code.split("_"))
