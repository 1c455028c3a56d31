"""The decompressed size of a PDF page's streams, measured before PDFium renders the page.

PDFium decodes a page's content streams and images whole, in C: a 1 MB FlateDecode stream
of 1 GB of spaces takes it past 2 GB, and at the runner's data limit it aborts the process.
Each Flate stream the page draws (its contents, its images and forms, the forms' own, once
each) is inflated here a chunk at a time and thrown away, counting bytes, so a stream past
the ceiling is refused having cost a chunk of memory and the time to inflate the ceiling.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    PdfObject,
    StreamObject,
)

from docjobs.runner.engines import PermanentError

SETTING = "DOCJOBS_CEILINGS__MAX_STREAM_BYTES"
_CHUNK = 1 << 20
_MAX_STREAMS_PER_PAGE = 10_000
"""Streams looked at per page; a page drawing more is left to the memory ceiling."""


class StreamMeter:
    """Checks the pages of one PDF against the stream ceiling; a PDF pypdf cannot read is
    left to PDFium (and the memory ceiling)."""

    def __init__(self, source: Path, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        try:
            self._reader: PdfReader | None = PdfReader(source)
            if self._reader.is_encrypted:
                self._reader = None
        except (PyPdfError, ValueError, OSError, KeyError, RecursionError):
            self._reader = None
        self._seen: set[tuple[int, int]] = set()

    def check_page(self, number: int) -> None:
        """Raises :class:`PermanentError` (``StreamTooLarge``) when a stream page ``number``
        (1-based) draws inflates past the ceiling."""
        if self._reader is None:
            return
        try:
            page = self._reader.pages[number - 1]
            for reference, stream in _streams(page):
                if reference in self._seen:
                    continue  # a form or image every page shares is measured once
                if _inflated_size(stream, self.max_bytes) > self.max_bytes:
                    raise too_large(number, self.max_bytes)
                if reference is not None:
                    self._seen.add(reference)
        except (PyPdfError, ValueError, KeyError, IndexError, RecursionError, AttributeError):
            return  # damaged structure: PDFium decides whether the page can be read


def too_large(number: int, max_bytes: int) -> PermanentError:
    return PermanentError(
        "StreamTooLarge",
        f"A stream of page {number} decompresses to more than the ceiling of"
        f" {max_bytes} bytes ({SETTING}).",
    )


def _streams(page: DictionaryObject) -> Iterator[tuple[tuple[int, int] | None, StreamObject]]:
    """The page's content streams, then the XObjects its resources name, forms followed,
    each with its object number and generation (``None`` for a direct object)."""
    seen: set[int] = set()
    pending: list[PdfObject] = _xobjects(page)
    contents = page.get("/Contents")
    if contents is not None:
        resolved = contents.get_object()
        pending.extend(resolved if isinstance(resolved, ArrayObject) else [contents])
    count = 0
    while pending and count < _MAX_STREAMS_PER_PAGE:
        item = pending.pop()
        stream = item.get_object()
        if not isinstance(stream, StreamObject) or id(stream) in seen:
            continue
        seen.add(id(stream))
        count += 1
        reference = item if isinstance(item, IndirectObject) else None
        yield (reference.idnum, reference.generation) if reference else None, stream
        if stream.get("/Subtype") == "/Form":
            pending.extend(_xobjects(stream))


def _xobjects(holder: DictionaryObject) -> list[PdfObject]:
    resources = holder.get("/Resources")
    resources = resources.get_object() if resources is not None else None
    if not isinstance(resources, DictionaryObject):
        return []
    xobjects = resources.get("/XObject")
    xobjects = xobjects.get_object() if xobjects is not None else None
    return list(xobjects.values()) if isinstance(xobjects, DictionaryObject) else []


def _inflated_size(stream: StreamObject, limit: int) -> int:
    """Bytes the stream's first filter, when FlateDecode, inflates to (counting stops past
    ``limit``); 0 for other filters and damaged data."""
    filters = stream.get("/Filter")
    filters = filters.get_object() if filters is not None else None
    first = filters[0] if isinstance(filters, ArrayObject) and filters else filters
    if not isinstance(first, NameObject) or first not in ("/FlateDecode", "/Fl"):
        return 0
    data = stream._data  # the encoded bytes, as read from the file
    inflater = zlib.decompressobj()
    total = 0
    try:
        while data:
            total += len(inflater.decompress(data, _CHUNK))
            if total > limit:
                break
            data = inflater.unconsumed_tail
    except zlib.error:
        pass  # inflated up to the damage; PDFium reads as far as that too
    return total
