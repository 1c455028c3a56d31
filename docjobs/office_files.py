"""What an uploaded Office file is, told by its content, and whether it unpacks within bounds.

A file's name is a claim: a ``.docx`` may be a PNG, a zip of anything, or a zip bomb. The
API reads the structure before a job exists (the zip's central directory, an OLE2 header,
the first bytes of RTF), so a file that can never be converted is refused with a 4xx at
once; the runner unpacks every zip entry against the same ceilings before LibreOffice opens
the file, since a central directory may understate what its entries inflate to.
"""

from __future__ import annotations

import mmap
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from docjobs.documents import (
    OCR_CONTENT_TYPES,
    SNIFF_BYTES,
    DocumentError,
    Inspection,
    InspectionCeilings,
    inspect_for_ocr,
    sniff_content_type,
)


@dataclass(frozen=True)
class OfficeFormat:
    extension: str
    """Without the dot: ``docx``; LibreOffice is handed the file under this name."""
    content_type: str
    family: str
    """``text``, ``spreadsheet`` or ``presentation``: the name and the content must agree."""


FORMATS: Mapping[str, OfficeFormat] = {
    f.extension: f
    for f in (
        OfficeFormat("doc", "application/msword", "text"),
        OfficeFormat(
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "text",
        ),
        OfficeFormat("odt", "application/vnd.oasis.opendocument.text", "text"),
        OfficeFormat("rtf", "application/rtf", "text"),
        OfficeFormat("xls", "application/vnd.ms-excel", "spreadsheet"),
        OfficeFormat(
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "spreadsheet",
        ),
        OfficeFormat("ods", "application/vnd.oasis.opendocument.spreadsheet", "spreadsheet"),
        OfficeFormat("ppt", "application/vnd.ms-powerpoint", "presentation"),
        OfficeFormat(
            "pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "presentation",
        ),
        OfficeFormat("odp", "application/vnd.oasis.opendocument.presentation", "presentation"),
    )
}
ACCEPTED = ", ".join(FORMATS)
CONTENT_TYPES = frozenset(f.content_type for f in FORMATS.values())
"""What a job records as its input's type when the input is an Office document."""
CONVERSION_ACCEPTS = f"Office conversion accepts {ACCEPTED} documents"
READING_ACCEPTS = f"OCR and parsing accept PDF, PNG, JPEG, TIFF and Office ({ACCEPTED}) documents"

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
RTF_MAGIC = b"{\\rtf"

# OpenDocument's ``mimetype`` entry, and the main part of an Office Open XML package
# (macro-enabled and template variants included: macros never run here).
_OPENDOCUMENT = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
}
_OOXML_MAIN_PARTS = {
    b"wordprocessingml.document.main+xml": "docx",
    b"wordprocessingml.template.main+xml": "docx",
    b"ms-word.document.macroEnabled.main+xml": "docx",
    b"spreadsheetml.sheet.main+xml": "xlsx",
    b"spreadsheetml.template.main+xml": "xlsx",
    b"ms-excel.sheet.macroEnabled.main+xml": "xlsx",
    b"presentationml.presentation.main+xml": "pptx",
    b"presentationml.slideshow.main+xml": "pptx",
    b"ms-powerpoint.presentation.macroEnabled.main+xml": "pptx",
}
# The stream each OLE2 application keeps its document in; the names are UTF-16 in the
# compound file's directory.
_OLE2_STREAMS = (
    ("WordDocument", "doc"),
    ("Workbook", "xls"),
    ("Book", "xls"),
    ("PowerPoint Document", "ppt"),
)
_MAX_MANIFEST_BYTES = 1024 * 1024
"""``[Content_Types].xml`` and ``mimetype`` are a few KB; more is not an Office file."""
_UNPACK_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class UnpackCeilings:
    """What a zip-based document may unpack to (``office`` settings)."""

    max_unpacked_bytes: int
    max_entries: int
    setting_prefix: str = "DOCJOBS_OFFICE__"


def detect(
    path: Path,
    file_name: str | None,
    ceilings: UnpackCeilings,
    accepts: str = CONVERSION_ACCEPTS,
) -> OfficeFormat:
    """The format of ``path`` from its content; 415 when it is none of the accepted ones or
    its name says another kind of document, 422 when its zip is past the ceilings.
    ``accepts`` opens a 415's message: what the route takes."""
    with path.open("rb") as stream:
        head = stream.read(16)
    if not head:
        raise DocumentError(400, "empty_file", "The uploaded file is empty.")
    if head.startswith(ZIP_MAGIC):
        found = _zip_format(path, ceilings, accepts)
    elif head.startswith(OLE2_MAGIC):
        found = _ole2_format(path, accepts)
    elif head.startswith(RTF_MAGIC):
        found = "rtf"
    else:
        raise _unsupported(
            accepts, "this file is none of them (no Office, OpenDocument or RTF header)"
        )
    office_format = FORMATS[found]
    claimed = _claimed(file_name)
    if claimed is not None and claimed.family != office_format.family:
        raise _unsupported(
            accepts,
            f"the file is named .{claimed.extension} but its content is a .{found} document",
        )
    return office_format


def inspect_for_reading(
    path: Path,
    declared_content_type: str | None,
    file_name: str | None,
    ceilings: InspectionCeilings,
    unpack: UnpackCeilings,
) -> Inspection:
    """An upload to read (OCR, extraction): a PDF or an image as
    :func:`~docjobs.documents.inspect_for_ocr` finds it, or an Office document told by its
    content (an Office, OpenDocument or RTF header wins over any declared type). An Office
    document's pages are unknown (``page_count`` ``None``) until LibreOffice lays it out in
    the runner, which then reads the PDF it made."""
    with path.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
    if head.startswith((ZIP_MAGIC, OLE2_MAGIC, RTF_MAGIC)):
        try:
            office_format = detect(path, file_name, unpack, READING_ACCEPTS)
        except DocumentError as exc:
            # A damaged zip is a damaged document only where its name says it is one.
            if exc.code == "unreadable_document" and _claimed(file_name) is None:
                why = "this is a zip archive that cannot be opened"
                raise _unsupported(READING_ACCEPTS, why) from None
            raise
        return Inspection(office_format.content_type, None)
    content_type = sniff_content_type(head, declared_content_type, file_name)
    if head and content_type not in OCR_CONTENT_TYPES:
        raise _unsupported(READING_ACCEPTS, f"this file is {content_type}")
    return inspect_for_ocr(path, declared_content_type, file_name, ceilings)


def check_variant(office_format: OfficeFormat, pdf_variant: str | None) -> None:
    """422 for a standard LibreOffice's export of this kind of document does not meet: its
    PDF/UA export tags the content of text documents only, and leaves a spreadsheet's cells
    or a presentation's shapes untagged, which PDF/UA-1 forbids."""
    if pdf_variant == "pdf/ua-1" and office_format.family != "text":
        text_kinds = ", ".join(f.extension for f in FORMATS.values() if f.family == "text")
        raise DocumentError(
            422,
            "unsupported_pdf_variant",
            f"pdf_variant 'pdf/ua-1' is available for text documents ({text_kinds}) only:"
            f" LibreOffice's PDF/UA export leaves a {office_format.family}'s content untagged,"
            " which PDF/UA-1 forbids. Ask for 'pdf/a-2b', 'pdf/a-3b' or no pdf_variant.",
        )


def check_unpacked(path: Path, ceilings: UnpackCeilings) -> None:
    """Inflate every entry of a zip-based document, counting, and stop past the ceiling;
    a CRC error (an entry longer than its directory says) refuses the document too."""
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            _check_directory(entries, ceilings)
            for entry in entries:
                with archive.open(entry) as member:
                    while chunk := member.read(_UNPACK_CHUNK):
                        total += len(chunk)
                        if total > ceilings.max_unpacked_bytes:
                            raise _too_large(ceilings)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
        raise DocumentError(
            400, "unreadable_document", f"The document's zip archive is damaged: {exc}."
        ) from None


def _zip_format(path: Path, ceilings: UnpackCeilings, accepts: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            _check_directory(entries, ceilings)
            names = {entry.filename: entry for entry in entries}
            mimetype = names.get("mimetype")
            if mimetype is not None and mimetype.file_size <= _MAX_MANIFEST_BYTES:
                declared = archive.read(mimetype).decode("ascii", "replace").strip()
                if declared in _OPENDOCUMENT:
                    return _OPENDOCUMENT[declared]
            types = names.get("[Content_Types].xml")
            if types is not None and types.file_size <= _MAX_MANIFEST_BYTES:
                manifest = archive.read(types)
                for part, extension in _OOXML_MAIN_PARTS.items():
                    if part in manifest:
                        return extension
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
        raise DocumentError(
            400, "unreadable_document", f"The document's zip archive is damaged: {exc}."
        ) from None
    raise _unsupported(accepts, "this is a zip archive without an Office or OpenDocument main part")


def _check_directory(entries: list[zipfile.ZipInfo], ceilings: UnpackCeilings) -> None:
    if len(entries) > ceilings.max_entries:
        raise DocumentError(
            422,
            "document_too_complex",
            f"The document's archive holds {len(entries)} entries, more than the ceiling of"
            f" {ceilings.max_entries} ({ceilings.setting_prefix}MAX_ENTRIES).",
        )
    if sum(entry.file_size for entry in entries) > ceilings.max_unpacked_bytes:
        raise _too_large(ceilings)


def _ole2_format(path: Path, accepts: str) -> str:
    with path.open("rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for stream_name, extension in _OLE2_STREAMS:
            if data.find(stream_name.encode("utf-16-le") + b"\x00\x00") >= 0:
                return extension
    raise _unsupported(
        accepts, "this is an OLE2 compound file without a Word, Excel or PowerPoint stream"
    )


def _claimed(file_name: str | None) -> OfficeFormat | None:
    if not file_name or "." not in file_name:
        return None
    return FORMATS.get(file_name.rsplit(".", 1)[1].lower())


def _too_large(ceilings: UnpackCeilings) -> DocumentError:
    return DocumentError(
        422,
        "document_too_complex",
        f"The document unpacks to more than the ceiling of"
        f" {ceilings.max_unpacked_bytes / (1024 * 1024):g} MiB"
        f" ({ceilings.setting_prefix}MAX_UNPACKED_MB): a zip bomb, or too large to convert.",
    )


def _unsupported(accepts: str, why: str) -> DocumentError:
    return DocumentError(415, "unsupported_media_type", f"{accepts}; {why}.")
