"""Small PDFs that cost much to read: built as raw bytes, in a fraction of a second."""

from __future__ import annotations

import zlib


def raw_pdf(objects: list[bytes], header: bytes = b"%PDF-1.4\n") -> bytes:
    """A PDF of ``objects`` (numbered from 1, the first the catalog) with its cross-reference
    table: no library would write the hostile ones."""
    out = bytearray(header)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def page_tree_pdf(pages: int, declared: int | None = None, page: bytes | None = None) -> bytes:
    """A PDF whose one ``/Pages`` node lists ``pages`` empty pages and declares ``declared``
    of them in ``/Count`` (``pages`` when ``None``); ``page`` is each page's dictionary."""
    count = pages if declared is None else declared
    page = page or b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>"
    kids = b" ".join(b"%d 0 R" % number for number in range(3, 3 + pages))
    return raw_pdf(
        [
            b"<</Type/Catalog/Pages 2 0 R>>",
            b"<</Type/Pages/Count %d/Kids[%s]>>" % (count, kids),
            *[page] * pages,
        ]
    )


def flate_bomb_pdf(inflated: int) -> bytes:
    """A one-page PDF whose content stream inflates to ``inflated`` bytes of spaces."""
    packer = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    data = packer.compress(b"BT /F1 12 Tf 72 700 Td (Hello) Tj ET\n")
    for start in range(0, inflated, len(chunk)):
        data += packer.compress(chunk[: inflated - start])
    data += packer.flush()
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ],
        header=b"%PDF-1.7\n",
    )
