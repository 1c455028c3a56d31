"""Small PDFs that cost much to read: built as raw bytes, in a fraction of a second."""

from __future__ import annotations


def page_tree_pdf(pages: int, declared: int | None = None, page: bytes | None = None) -> bytes:
    """A PDF whose one ``/Pages`` node lists ``pages`` empty pages and declares ``declared``
    of them in ``/Count`` (``pages`` when ``None``); ``page`` is each page's dictionary."""
    count = pages if declared is None else declared
    page = page or b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>"
    kids = b" ".join(b"%d 0 R" % number for number in range(3, 3 + pages))
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Count %d/Kids[%s]>>" % (count, kids),
        *[page] * pages,
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj" % number + body + b"endobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
