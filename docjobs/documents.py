"""Inspect an uploaded document before a job is queued.

The API calls this so that a user whose document can never be processed learns it at
once, with a 4xx answer, instead of from a failed job minutes later. Everything here
reads headers and structure only: images are never decoded and PDF content streams are
never interpreted. A PDF's page tree is walked in a child process under the inspection
ceilings (:mod:`docjobs.bounded`), so a hostile file costs the API a bounded time and no
memory that outlives the check.

The runner reuses the pure helpers (:func:`sniff_content_type`, :func:`decode_text`) so
that the API and the engines agree on what a document is; page selections are the
domain's (:mod:`docjobs.domain.pages`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError

from docjobs.bounded import Bounds, CeilingReached, run_bounded
from docjobs.languages import (
    UnsupportedLanguage,
    installed_tesseract_languages,
    tesseract_languages,
)
from docjobs.pdf_pages import limit_pypdf_warnings

# The runner reads PDFs with pypdf too (searchable PDFs, failure reasons): one budget for all.
limit_pypdf_warnings()

log = logging.getLogger(__name__)

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
OCR_CONTENT_TYPES = frozenset({PDF, PNG, JPEG, TIFF})

MAX_TIFF_FRAMES = 2_000
"""Frames the runner walks; each one is an IFD seek, and hostile files chain millions."""
SNIFF_BYTES = 1024
"""How much of a file :func:`sniff_content_type` needs (PDF headers may sit after junk)."""

SourceFormat = Literal["text", "html", "markdown", "json"]

_FORMAT_CONTENT_TYPES: dict[str, str] = {
    "text": "text/plain",
    "html": "text/html",
    "markdown": "text/markdown",
    "json": "application/json",
}
_EXTENSION_CONTENT_TYPES: dict[str, str] = {
    ".pdf": PDF,
    ".png": PNG,
    ".jpg": JPEG,
    ".jpeg": JPEG,
    ".tif": TIFF,
    ".tiff": TIFF,
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
}
# Formats that are certainly not text, for refusing a binary upload declared as text.
_BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\x7fELF", "application/x-executable"),
)


class DocumentError(Exception):
    """The document or a parameter cannot be processed; maps to one HTTP answer."""

    def __init__(self, status_code: Literal[400, 415, 422], code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


@dataclass(frozen=True)
class InspectionCeilings:
    """What inspecting one upload may cost: the ``ceilings`` settings the API passes in
    (this layer cannot read the settings); the defaults are the settings' defaults."""

    max_pages: int = 2000
    max_image_pixels: int = 100_000_000
    seconds: float = 10.0
    memory_mb: int = 512


@dataclass(frozen=True)
class Inspection:
    content_type: str
    page_count: int | None
    """Pages an OCR job would see; ``None`` for conversion input (known only once rendered)."""


def sniff_content_type(head: bytes, declared: str | None, file_name: str | None) -> str:
    """Content type from magic bytes, else the declared type, else the file extension.

    Magic bytes win because browsers and clients routinely declare
    ``application/octet-stream`` or guess from a wrong extension.
    """
    # Readers (pdfium, Acrobat) accept a PDF header anywhere in the first kilobyte.
    if b"%PDF-" in head[:SNIFF_BYTES]:
        return PDF
    for magic, content_type in _BINARY_MAGIC:
        if head.startswith(magic) and content_type in OCR_CONTENT_TYPES:
            return content_type
    if declared:
        normalised = declared.split(";", 1)[0].strip().lower()
        if normalised and normalised != "application/octet-stream":
            return "image/jpeg" if normalised == "image/jpg" else normalised
    if file_name:
        return _EXTENSION_CONTENT_TYPES.get(
            Path(file_name).suffix.lower(), "application/octet-stream"
        )
    return "application/octet-stream"


def inspect_for_ocr(
    path: Path,
    declared_content_type: str | None,
    file_name: str | None,
    ceilings: InspectionCeilings | None = None,
) -> Inspection:
    """Check that ``path`` is a PDF or image an OCR engine can read, and count its pages.

    A truncated or otherwise damaged PDF is accepted when pypdf, in its lenient mode, can
    still rebuild the page tree (the renderer, PDFium, repairs at least as much); when it
    cannot, the upload is refused as ``unreadable_pdf``: a failed upload is the usual
    cause and only the user can fix it. A PDF encrypted with an empty user password opens
    in every viewer without a prompt, so it is accepted like any other. A document of more
    pages or pixels than ``ceilings`` allow is refused (``too_many_pages``,
    ``image_too_large``).
    """
    ceilings = ceilings or InspectionCeilings()
    head = _read_head(path)
    content_type = sniff_content_type(head, declared_content_type, file_name)
    if content_type not in OCR_CONTENT_TYPES:
        raise DocumentError(
            415,
            "unsupported_media_type",
            f"OCR accepts PDF, PNG, JPEG and TIFF documents, not {content_type}.",
        )
    if content_type == PDF:
        return Inspection(content_type, pdf_page_count(path, ceilings))
    return Inspection(content_type, _image_page_count(path, content_type, ceilings))


def inspect_for_conversion(path: Path, source_format: SourceFormat) -> Inspection:
    """Check that ``path`` is text in ``source_format`` (and valid JSON when it says so)."""
    data = path.read_bytes()
    if not data:
        raise _empty()
    for magic, content_type in _BINARY_MAGIC:
        if data.startswith(magic):
            raise _not_text(source_format, content_type)
    # Only a leading header counts here: prose may well mention "%PDF-1.7".
    if data.lstrip().startswith(b"%PDF-"):
        raise _not_text(source_format, PDF)
    # No text encoding we accept puts NUL bytes in a document; UTF-16 text would, and
    # latin-1 would otherwise "decode" it (and any binary) into garbage.
    if b"\x00" in data:
        raise _not_text(source_format, "binary data")
    text = decode_text(data)
    if not text.strip():
        raise _empty()
    if source_format == "json":
        parse_json(text)
    return Inspection(_FORMAT_CONTENT_TYPES[source_format], None)


def decode_text(data: bytes) -> str:
    """UTF-8 (a byte-order mark is dropped), else latin-1, which decodes any byte string."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_json(text: str) -> object:
    """Parse ``text`` as JSON or raise ``invalid_json`` saying where it went wrong."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            400,
            "invalid_json",
            f"The document is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
        ) from None
    except (ValueError, RecursionError):
        # Integers past Python's digit limit, or nesting deeper than the parser's stack.
        raise DocumentError(
            400,
            "invalid_json",
            "The JSON holds a number with too many digits or is nested too deeply to read.",
        ) from None


def pdf_page_count(path: Path, ceilings: InspectionCeilings | None = None) -> int:
    """Pages of the PDF at ``path``; ``encrypted_pdf``, ``unreadable_pdf``, ``no_pages``,
    ``too_many_pages``, or ``document_too_complex`` when counting them takes more time or
    memory than ``ceilings`` allow. Blocks for up to ``ceilings.seconds``."""
    ceilings = ceilings or InspectionCeilings()
    bounds = Bounds(ceilings.seconds, ceilings.memory_mb)
    argument = {"path": str(path), "max_pages": ceilings.max_pages}
    try:
        found = run_bounded("docjobs.pdf_pages:count_pages", argument, bounds)
    except CeilingReached as exc:
        log.info("PDF %s: page count stopped: %s", path.name, exc)
        raise too_complex(exc) from None
    code = found["code"]
    if code == "ok":
        return int(found["pages"])
    if code == "encrypted_pdf":
        raise DocumentError(
            400,
            "encrypted_pdf",
            "The PDF is password-protected; upload a copy without a password.",
        )
    if code == "no_pages":
        raise DocumentError(400, "no_pages", "The PDF has no pages.")
    if code == "too_many_pages":
        raise too_many_pages("The PDF", ceilings.max_pages)
    log.info("unreadable PDF %s: %s", path.name, found.get("detail"))
    raise DocumentError(
        400,
        "unreadable_pdf",
        "The PDF is damaged or truncated and cannot be read; try uploading it again.",
    )


def too_many_pages(what: str, max_pages: int) -> DocumentError:
    return DocumentError(
        422,
        "too_many_pages",
        f"{what} has more than {max_pages} pages, which exceeds the ceiling of {max_pages} "
        "pages (DOCJOBS_CEILINGS__MAX_PAGES); split it into smaller files.",
    )


def too_complex(exc: CeilingReached) -> DocumentError:
    """The refusal of a document whose structure took more than the inspection ceilings."""
    if exc.ceiling == "seconds":
        ceiling = f"{exc.bounds.seconds:g} s (DOCJOBS_CEILINGS__INSPECT_SECONDS)"
    else:
        ceiling = f"{exc.bounds.memory_mb} MiB (DOCJOBS_CEILINGS__INSPECT_MEMORY_MB)"
    return DocumentError(
        422,
        "document_too_complex",
        f"Reading the document's structure exceeds the ceiling of {ceiling}; "
        "save it again with a PDF tool, or split it into smaller files.",
    )


def check_language(hint: str) -> str:
    """Tesseract's codes for a language hint ("en", "english", "fr-FR", "eng+deu").

    Refused as ``unsupported_language`` only when some part maps to no installed
    language. Where Tesseract is not installed (an API image without engines) the hint is
    only translated; the runner refuses the job if its Tesseract lacks the language.
    """
    try:
        return tesseract_languages(hint, installed_tesseract_languages())
    except UnsupportedLanguage as exc:
        raise DocumentError(422, "unsupported_language", str(exc)) from None


def _read_head(path: Path) -> bytes:
    with path.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
    if not head:
        raise _empty()
    return head


def _image_page_count(path: Path, content_type: str, ceilings: InspectionCeilings) -> int:
    try:
        # Image.open parses the header only; pixels are decoded on load(), never called here.
        with Image.open(path) as image:
            _check_pixels(image.size, ceilings)
            return _tiff_frame_count(image, ceilings) if content_type == TIFF else 1
    except Image.DecompressionBombError:
        raise _too_large(None, ceilings) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        # Pillow reports corrupt headers as any of these.
        log.info("unreadable image %s: %s: %s", path.name, type(exc).__name__, exc)
        raise DocumentError(
            400, "unreadable_image", "The image is damaged or not in the format it claims."
        ) from None


def _tiff_frame_count(image: Image.Image, ceilings: InspectionCeilings) -> int:
    """Walk the TIFF frame chain, checking each frame's size, up to the page ceiling."""
    frames = 0
    while True:
        _check_pixels(image.size, ceilings)
        frames += 1
        if frames > ceilings.max_pages:
            raise too_many_pages("The TIFF", ceilings.max_pages)
        try:
            image.seek(frames)
        except EOFError:
            return frames


def _check_pixels(size: tuple[int, int], ceilings: InspectionCeilings) -> None:
    width, height = size
    if width * height > ceilings.max_image_pixels:
        raise _too_large(size, ceilings)


def _too_large(size: tuple[int, int] | None, ceilings: InspectionCeilings) -> DocumentError:
    dimensions = f" ({size[0]}x{size[1]} pixels)" if size else ""
    return DocumentError(
        400,
        "image_too_large",
        f"The image{dimensions} exceeds the ceiling of "
        f"{ceilings.max_image_pixels / 1_000_000:g} megapixels "
        "(DOCJOBS_CEILINGS__MAX_IMAGE_PIXELS).",
    )


def _empty() -> DocumentError:
    return DocumentError(400, "empty_file", "The uploaded file is empty.")


def _not_text(source_format: str, found: str) -> DocumentError:
    return DocumentError(
        415,
        "unsupported_media_type",
        f"Conversion from {source_format} needs a text file, but this looks like {found}.",
    )
