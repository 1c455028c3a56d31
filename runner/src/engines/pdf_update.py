"""Content drawn over a PDF's pages, written as an incremental update of the PDF.

The input's bytes are copied to the output unchanged and new objects follow them: each
layer's content stream, the layers' fonts, and a new version (same object number) of each
page that gained a layer, its contents wrapped in ``q``/``Q`` and followed by the layer.
pypdf reads the page dictionaries from the open file without loading image streams, so
memory stays flat however many pages the document has.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pypdf import PageObject, PdfReader
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
)

from docjobs.runner.engines import pdf_actions

Layer = Callable[[PageObject, int], bytes | None]
"""The content to draw over page ``number`` (1-based), or ``None`` to leave it as it is."""

_STARTXREF = re.compile(rb"startxref\s+(\d+)")
_TAIL_BYTES = 2048
_CARRIED = ("/Root", "/Info", "/ID")
"""Trailer entries the update repeats; readers take them from the newest trailer."""


def append_layers(
    source: BinaryIO, layer: Layer, fonts: dict[str, DictionaryObject], target: Path
) -> bool:
    """Writes ``source`` with ``layer``'s content over its pages to ``target``.

    ``False`` (nothing written) for a PDF this cannot update in place: an encrypted one,
    or one whose ``startxref`` does not point at a cross-reference section (pypdf reads
    such a file by rebuilding the table, which an update could not point back to).
    """
    reader = PdfReader(source)
    size = reader.trailer.get("/Size")
    previous = _last_xref(source)
    if reader.is_encrypted or previous is None or not isinstance(size, NumberObject):
        return False
    offset, is_stream = previous
    source.seek(0)
    with target.open("wb") as out:
        shutil.copyfileobj(source, out)
        out.write(b"\n")
        writer = _ObjectWriter(out, int(size))
        wrap: tuple[IndirectObject, IndirectObject] | None = None
        font_refs: DictionaryObject | None = None
        for number, page in enumerate(reader.pages, start=1):
            reference = page.indirect_reference
            assert reference is not None  # every page read from a file has one
            for annotation, clean in pdf_actions.referenced_annotations(page):
                writer.put(annotation, clean)
            content = layer(page, number)
            if content is None:
                cleaned = pdf_actions.clean_page(page)
                if cleaned is not None:
                    writer.put(reference, cleaned)
                continue
            if wrap is None or font_refs is None:
                wrap = (writer.add(_stream(b"q\n")), writer.add(_stream(b"\nQ\n")))
                font_refs = DictionaryObject(
                    {NameObject(name): writer.add(font) for name, font in fonts.items()}
                )
            drawn = writer.add(_stream(content))
            shown = pdf_actions.clean_page(page) or page
            writer.put(reference, _with_layer(shown, wrap, drawn, font_refs))
        root = reader.trailer.raw_get("/Root")
        found = root.get_object() if isinstance(root, IndirectObject) else None
        catalog = pdf_actions.clean_catalog(found) if isinstance(found, DictionaryObject) else None
        if isinstance(root, IndirectObject) and catalog is not None:
            writer.put(root, catalog)
        trailer = {
            NameObject(key): reader.trailer.raw_get(key)
            for key in _CARRIED
            if key in reader.trailer
        }
        trailer[NameObject("/Prev")] = NumberObject(offset)
        if writer.wrote:  # nothing to add or take out: the input as it is
            writer.finish(DictionaryObject(trailer), as_stream=is_stream)
    return True


def _last_xref(source: BinaryIO) -> tuple[int, bool] | None:
    """The offset of the file's last cross-reference section and whether it is a stream."""
    source.seek(0, 2)
    size = source.tell()
    source.seek(max(0, size - _TAIL_BYTES))
    found = _STARTXREF.findall(source.read())
    if not found:
        return None
    offset = int(found[-1])
    source.seek(offset)
    head = source.read(32)
    if head.startswith(b"xref"):
        return offset, False
    if re.match(rb"\d+\s+\d+\s+obj", head):
        return offset, True
    return None


def _with_layer(
    page: DictionaryObject,
    wrap: tuple[IndirectObject, IndirectObject],
    drawn: IndirectObject,
    font_refs: DictionaryObject,
) -> DictionaryObject:
    """A copy of ``page`` drawing ``drawn`` over its contents with the fonts added.

    Resources (an object shared with other pages, or inherited) are copied into the page
    rather than changed where they are.
    """
    updated = DictionaryObject(dict.items(page))
    contents: list[PdfObject] = [wrap[0]]
    original = page.raw_get("/Contents") if "/Contents" in page else None
    if original is not None:
        resolved = original.get_object()
        contents.extend(resolved if isinstance(resolved, ArrayObject) else [original])
    contents.extend([wrap[1], drawn])
    updated[NameObject("/Contents")] = ArrayObject(contents)
    resources = _resolved(page, "/Resources")
    copied = DictionaryObject(
        dict.items(resources) if isinstance(resources, DictionaryObject) else ()
    )
    fonts = _resolved(copied, "/Font")
    merged = DictionaryObject(dict.items(fonts) if isinstance(fonts, DictionaryObject) else ())
    merged.update(font_refs)
    copied[NameObject("/Font")] = merged
    updated[NameObject("/Resources")] = copied
    return updated


def _resolved(dictionary: DictionaryObject, key: str) -> PdfObject | None:
    """``dictionary``'s entry ``key``, a reference followed (``get`` leaves it as it is)."""
    value = dictionary.get(key)
    return value.get_object() if isinstance(value, PdfObject) else None


def _stream(data: bytes) -> DecodedStreamObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    return stream


class _ObjectWriter:
    """Appends numbered objects to ``out`` and the cross-reference section listing them."""

    def __init__(self, out: BinaryIO, first_number: int) -> None:
        self._out = out
        self._next = first_number
        self._offsets: dict[int, tuple[int, int]] = {}

    @property
    def wrote(self) -> bool:
        return bool(self._offsets)

    def add(self, obj: PdfObject) -> IndirectObject:
        """Writes ``obj`` as a new object, returning the reference to it."""
        number = self._next
        self._next += 1
        self._write(number, 0, obj)
        return IndirectObject(number, 0, None)

    def put(self, reference: IndirectObject, obj: PdfObject) -> None:
        """Writes a new version of the object ``reference`` names."""
        self._write(reference.idnum, reference.generation, obj)

    def _write(self, number: int, generation: int, obj: PdfObject) -> None:
        self._offsets[number] = (self._out.tell(), generation)
        self._out.write(f"{number} {generation} obj\n".encode())
        obj.write_to_stream(self._out)
        self._out.write(b"\nendobj\n")

    def finish(self, trailer: DictionaryObject, *, as_stream: bool) -> None:
        """Writes the cross-reference section (a stream if ``as_stream``) and the trailer."""
        if as_stream:
            number = self._next
            self._next += 1
            start = self._out.tell()
            self._offsets[number] = (start, 0)
            trailer.update(self._xref_stream_fields())
            self._write(number, 0, self._xref_stream(trailer))
        else:
            start = self._out.tell()
            self._out.write(b"xref\n")
            for first, entries in self._sections():
                self._out.write(f"{first} {len(entries)}\n".encode())
                for offset, generation in entries:
                    self._out.write(f"{offset:010d} {generation:05d} n\r\n".encode())
            trailer[NameObject("/Size")] = NumberObject(self._next)
            self._out.write(b"trailer\n")
            trailer.write_to_stream(self._out)
            self._out.write(b"\n")
        self._out.write(f"startxref\n{start}\n%%EOF\n".encode())

    def _xref_stream_fields(self) -> DictionaryObject:
        return DictionaryObject(
            {
                NameObject("/Type"): NameObject("/XRef"),
                NameObject("/Size"): NumberObject(self._next),
                NameObject("/W"): ArrayObject([NumberObject(1), NumberObject(8), NumberObject(2)]),
                NameObject("/Index"): ArrayObject(
                    NumberObject(value)
                    for first, entries in self._sections()
                    for value in (first, len(entries))
                ),
            }
        )

    def _xref_stream(self, fields: DictionaryObject) -> DecodedStreamObject:
        stream = _stream(
            b"".join(
                b"\x01" + offset.to_bytes(8, "big") + generation.to_bytes(2, "big")
                for _, entries in self._sections()
                for offset, generation in entries
            )
        )
        stream.update(fields)
        return stream

    def _sections(self) -> list[tuple[int, list[tuple[int, int]]]]:
        """Runs of consecutive object numbers, each with its entries."""
        sections: list[tuple[int, list[tuple[int, int]]]] = []
        for number in sorted(self._offsets):
            if sections and sections[-1][0] + len(sections[-1][1]) == number:
                sections[-1][1].append(self._offsets[number])
            else:
                sections.append((number, [self._offsets[number]]))
        return sections
