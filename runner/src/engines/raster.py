"""Turn PDF pages and image frames into Pillow images for OCR, one page at a time.

Pages are rendered lazily so that a 500-page scan needs the memory of one page, and
every size is bounded before pixels are decoded: a document is untrusted input.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pypdfium2 as pdfium
from PIL import Image, ImageOps, UnidentifiedImageError

from docjobs import documents
from docjobs.config import get_settings
from docjobs.domain.pages import InvalidPageSelection, validate_pages
from docjobs.runner.engines import PermanentError
from docjobs.runner.engines.pdf_streams import StreamMeter

TARGET_DPI = 300
"""Tesseract is trained on text at roughly 300 DPI; lower loses small print."""
MAX_RENDER_PIXELS = 40_000_000
"""Cap on one rendered PDF page (an A0 poster at 300 DPI would be 140 MP); a larger page is
rendered at a lower resolution, and so is one above the pixel ceiling."""
PIXELS_SETTING = "DOCJOBS_CEILINGS__MAX_IMAGE_PIXELS"
PAGES_SETTING = "DOCJOBS_CEILINGS__MAX_PAGES"


def max_image_pixels() -> int:
    """The pixel ceiling, also made Pillow's own limit in this process (the runner's: it
    runs one attempt at a time). Pillow warns above it and refuses at twice it;
    ``_decoding()`` turns both into a permanent failure."""
    ceiling = get_settings().ceilings.max_image_pixels
    Image.MAX_IMAGE_PIXELS = ceiling
    return ceiling


@dataclass(frozen=True)
class Page:
    number: int
    """1-based position in the document."""
    image: Image.Image
    """Mode ``L`` or ``RGB``, upright as far as the file says (PDF /Rotate, EXIF)."""
    dpi: int | None
    """Resolution when known (rendered PDF pages); ``None`` lets Tesseract estimate it."""


class Document(Protocol):
    page_count: int

    def page(self, number: int) -> Page: ...

    def close(self) -> None: ...


def iter_pages(
    source: Path,
    content_type: str,
    pages: str | None,
    on_selected: Callable[[int], None] | None = None,
) -> Iterator[Page]:
    """The pages selected by ``pages`` ("1-3,5"; all when ``None``), in order.

    Raises :class:`PermanentError` on the first ``next()`` when the document cannot be
    read or the selection is out of range, before any page is rendered. ``on_selected``
    is told how many pages were selected, before the first one is rendered.
    """
    with open_document(source, content_type) as document:
        numbers = select_pages(pages, document.page_count)
        if on_selected is not None:
            on_selected(len(numbers))
        for number in numbers:
            yield document.page(number)


@contextmanager
def open_document(source: Path, content_type: str) -> Iterator[Document]:
    with source.open("rb") as stream:
        head = stream.read(documents.SNIFF_BYTES)
    # Trust the bytes over the recorded type, which came from the uploading client.
    kind = documents.sniff_content_type(head, content_type, source.name)
    max_image_pixels()
    document: Document
    if kind == documents.PDF:
        document = _PdfDocument(source)
    elif kind in documents.OCR_CONTENT_TYPES:
        document = _ImageDocument(source)
    else:
        raise PermanentError(
            "UnsupportedMediaType", f"OCR reads PDF, PNG, JPEG and TIFF, not {kind}."
        )
    try:
        ceiling = get_settings().ceilings.max_pages
        if document.page_count > ceiling:
            raise PermanentError(
                "TooManyPages",
                f"The document has {document.page_count} pages, more than the ceiling of"
                f" {ceiling} pages ({PAGES_SETTING}).",
            )
        yield document
    finally:
        document.close()


def select_pages(pages: str | None, page_count: int) -> list[int]:
    try:
        return validate_pages(pages, page_count)
    except InvalidPageSelection as exc:
        reason = (
            "PageRangeOutOfBounds" if exc.code == "page_range_out_of_bounds" else "InvalidPageRange"
        )
        raise PermanentError(reason, exc.message) from None


class _PdfDocument:
    def __init__(self, source: Path) -> None:
        try:
            self._pdf = pdfium.PdfDocument(source)
        except pdfium.PdfiumError as exc:
            raise _pdf_load_error(source, exc) from None
        self.page_count = len(self._pdf)
        if self.page_count == 0:
            self._pdf.close()
            raise PermanentError("EmptyDocument", "The PDF has no pages.")
        self._streams = StreamMeter(source, get_settings().ceilings.max_stream_bytes)

    def page(self, number: int) -> Page:
        self._streams.check_page(number)
        try:
            # A damaged page tree (a /Count its kids do not hold) fails here, the same on
            # every attempt.
            page = self._pdf[number - 1]
        except pdfium.PdfiumError as exc:
            raise PermanentError(
                "UnreadableDocument", f"Page {number} cannot be read: {exc}"
            ) from None
        try:
            width, height = page.get_size()
            if not all(0 < side < math.inf for side in (width, height)):
                raise PermanentError("UnreadableDocument", f"Page {number} has no usable size.")
            scale = render_scale(width, height)
            bitmap = page.render(scale=scale, grayscale=True)
            try:
                # to_pil() shares PDFium's buffer, which close() frees: keep a copy.
                image = bitmap.to_pil().copy()
            finally:
                bitmap.close()
        except pdfium.PdfiumError as exc:
            raise PermanentError(
                "UnreadableDocument", f"Page {number} cannot be rendered: {exc}"
            ) from None
        finally:
            page.close()
        return Page(number, _ocr_mode(image), round(scale * 72))

    def close(self) -> None:
        self._pdf.close()


def _pdf_load_error(source: Path, exc: pdfium.PdfiumError) -> PermanentError:
    """Say why PDFium could not open ``source``.

    PDFium's error code is process-global and not reset by a load that fails without
    setting it (an empty page tree does that), so it may describe an earlier document.
    pypdf is asked instead; PDFium opens empty-password PDFs by itself, and so does it.
    """
    reasons = {
        "encrypted_pdf": "EncryptedDocument",
        "no_pages": "EmptyDocument",
        "unreadable_pdf": "UnreadableDocument",
        "too_many_pages": "TooManyPages",
        "document_too_complex": "DocumentTooComplex",
    }
    try:
        documents.pdf_page_count(source)
    except documents.DocumentError as error:
        return PermanentError(reasons.get(error.code, "UnreadableDocument"), error.message)
    return PermanentError("UnreadableDocument", f"The PDF cannot be opened: {exc}")


def render_scale(width_pt: float, height_pt: float) -> float:
    """Pixels per PDF point: TARGET_DPI, lowered so the page stays under MAX_RENDER_PIXELS
    and the pixel ceiling."""
    scale = TARGET_DPI / 72
    most = min(MAX_RENDER_PIXELS, get_settings().ceilings.max_image_pixels)

    def pixels(scale: float) -> int:
        # pypdfium2 rounds each side up.
        return math.ceil(width_pt * scale) * math.ceil(height_pt * scale)

    if pixels(scale) > most:
        scale = math.sqrt(most / (width_pt * height_pt))
        while pixels(scale) > most:
            scale *= 0.999
    return scale


class _ImageDocument:
    def __init__(self, source: Path) -> None:
        with _decoding():
            self._image = Image.open(source)
        try:
            with _decoding():
                # n_frames walks the TIFF chain header by header (Pillow stops on loops).
                self.page_count = int(getattr(self._image, "n_frames", 1))
            if self.page_count > documents.MAX_TIFF_FRAMES:
                raise PermanentError(
                    "TooManyPages",
                    f"The image has {self.page_count} frames; at most "
                    f"{documents.MAX_TIFF_FRAMES} are read.",
                )
        except BaseException:
            self._image.close()
            raise

    def page(self, number: int) -> Page:
        with _decoding():
            self._image.seek(number - 1)
            width, height = self._image.size
            if width * height > max_image_pixels():
                raise _too_large()
            # Phones store photos sideways and record the rotation in EXIF.
            upright = ImageOps.exif_transpose(self._image)
            image = _ocr_mode(upright)
        return Page(number, image, None)

    def close(self) -> None:
        self._image.close()


def _ocr_mode(image: Image.Image) -> Image.Image:
    """A mode Tesseract reads as intended: 1, L or RGB, transparency flattened onto white."""
    if image.mode in ("1", "L", "RGB"):
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit greyscale scans: keep the top 8 bits rather than clipping to white.
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flattened = Image.new("RGB", rgba.size, (255, 255, 255))
        flattened.paste(rgba, mask=rgba.getchannel("A"))
        return flattened
    return image.convert("RGB")


@contextmanager
def _decoding() -> Iterator[None]:
    """Map Pillow's failures on hostile or damaged images to permanent job failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_large() from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
            raise PermanentError(
                "UnreadableDocument", f"The image is damaged or truncated: {exc}"
            ) from None


def _too_large() -> PermanentError:
    return PermanentError(
        "ImageTooLarge",
        f"The image exceeds the ceiling of {get_settings().ceilings.max_image_pixels} pixels"
        f" per page ({PIXELS_SETTING}).",
    )
