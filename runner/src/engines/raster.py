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
from docjobs.runner.engines import PermanentError

TARGET_DPI = 300
"""Tesseract is trained on text at roughly 300 DPI; lower loses small print."""
MAX_RENDER_PIXELS = 40_000_000
"""Cap on one rendered PDF page (an A0 poster at 300 DPI would be 140 MP)."""

# The runner runs one job per process, so the global limit is ours to set. Pillow warns
# above it and refuses at twice it; _decoding() turns both into a permanent failure.
Image.MAX_IMAGE_PIXELS = documents.MAX_IMAGE_PIXELS


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
        yield document
    finally:
        document.close()


def select_pages(pages: str | None, page_count: int) -> list[int]:
    try:
        return documents.validate_pages(pages, page_count)
    except documents.DocumentError as exc:
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

    def page(self, number: int) -> Page:
        page = self._pdf[number - 1]
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
    }
    try:
        documents.pdf_page_count(source)
    except documents.DocumentError as error:
        return PermanentError(reasons.get(error.code, "UnreadableDocument"), error.message)
    return PermanentError("UnreadableDocument", f"The PDF cannot be opened: {exc}")


def render_scale(width_pt: float, height_pt: float) -> float:
    """Pixels per PDF point: TARGET_DPI, lowered so the page stays under MAX_RENDER_PIXELS."""
    scale = TARGET_DPI / 72

    def pixels(scale: float) -> int:
        # pypdfium2 rounds each side up.
        return math.ceil(width_pt * scale) * math.ceil(height_pt * scale)

    if pixels(scale) > MAX_RENDER_PIXELS:
        scale = math.sqrt(MAX_RENDER_PIXELS / (width_pt * height_pt))
        while pixels(scale) > MAX_RENDER_PIXELS:
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
            if width * height > documents.MAX_IMAGE_PIXELS:
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
        f"The image exceeds {documents.MAX_IMAGE_PIXELS // 1_000_000} megapixels per page.",
    )
