"""Count a PDF's pages, and stop once there are too many.

:func:`count_pages` runs in a child process under :mod:`docjobs.bounded` (see
:func:`docjobs.documents.pdf_page_count`), so it imports PDFium, pypdf and nothing of
docjobs: the child starts in the time those take to import.

PDFium, which renders the pages in the runner, reads a page count from the page tree's
``/Count`` in native code, in a second for a file of 600,000 pages where pypdf's pure
Python takes minutes; it is asked first, and a document that claims more pages than the
ceiling is refused as soon as its page past the ceiling is found (and as damaged when that
page is missing). Every other document has its tree walked with pypdf, which has the final
word on whether a damaged file can be read; the walk stops at the first page past the
ceiling, and compares the pages it found with the ``/Count`` the tree declares, since a
tree that disagrees with it cannot be rendered page by page.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import pypdfium2 as pdfium
from pypdf import PasswordType, PdfReader
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NumberObject

WARNINGS_PER_SECOND = 10
"""pypdf log lines let through each second; a damaged file makes it warn thousands of times."""


class _WarningBudget(logging.Filter):
    """Lets ``per_second`` records through each second, and says how many it held back."""

    def __init__(self, per_second: int) -> None:
        super().__init__()
        self.per_second = per_second
        self._lock = threading.Lock()
        self._window = 0.0
        self._passed = 0
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._window >= 1.0:
                if self._dropped:
                    record.msg = (
                        f"{record.getMessage()} (and {self._dropped} more pypdf warnings "
                        "in the second before, not logged)"
                    )
                    record.args = ()
                self._window, self._passed, self._dropped = now, 0, 0
            if self._passed >= self.per_second:
                self._dropped += 1
                return False
            self._passed += 1
            return True


_BUDGET = _WarningBudget(WARNINGS_PER_SECOND)


def limit_pypdf_warnings() -> None:
    """Put pypdf's log lines under one budget. pypdf logs through a logger named after each
    of its modules, and a logger's filter does not apply to the loggers below it, so the
    filter goes on every pypdf module's logger; calling this again covers modules pypdf
    imported since."""
    for name in [name for name in sys.modules if name == "pypdf" or name.startswith("pypdf.")]:
        logger = logging.getLogger(name)
        if _BUDGET not in logger.filters:
            logger.addFilter(_BUDGET)


limit_pypdf_warnings()


def count_pages(argument: dict[str, Any]) -> dict[str, Any]:
    """``{"code": "ok", "pages": n}`` for the PDF at ``argument["path"]``, or a refusal:
    ``{"code": c, "detail": text}`` with ``c`` one of ``encrypted_pdf``, ``unreadable_pdf``,
    ``no_pages``, ``too_many_pages`` (more than ``argument["max_pages"]``)."""
    max_pages = int(argument["max_pages"])
    claimed = _claimed_past(str(argument["path"]), max_pages)
    if claimed is not None:
        return claimed
    try:
        reader = PdfReader(str(argument["path"]), strict=False)
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            return {"code": "encrypted_pdf", "detail": ""}
        return _walk(reader, max_pages)
    except MemoryError:
        raise
    except Exception as exc:  # pypdf raises many types on damaged input; all mean the same
        return {"code": "unreadable_pdf", "detail": f"{type(exc).__name__}: {exc}"}
    finally:
        limit_pypdf_warnings()


def _claimed_past(path: str, max_pages: int) -> dict[str, Any] | None:
    """The answer for a document PDFium opens and counts past ``max_pages``; ``None`` for
    every other one (pypdf decides)."""
    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError:
        return None
    try:
        claimed = len(document)
        if claimed <= max_pages:
            return None
        try:
            # Found through the tree's nodes without loading the page's content.
            document.get_page_size(max_pages)
        except pdfium.PdfiumError:
            return {
                "code": "unreadable_pdf",
                "detail": f"the page tree claims {claimed} pages, page {max_pages + 1} is missing",
            }
        return {"code": "too_many_pages", "detail": f"{claimed} pages"}
    finally:
        document.close()


def _walk(reader: PdfReader, max_pages: int) -> dict[str, Any]:
    root = reader.trailer["/Root"].get_object()
    if not isinstance(root, DictionaryObject):
        return {"code": "unreadable_pdf", "detail": "/Root is not a dictionary"}
    tree = root["/Pages"].get_object()
    if not isinstance(tree, DictionaryObject):
        return {"code": "unreadable_pdf", "detail": "/Pages is not a dictionary"}
    declared = tree.get("/Count")
    declared_count = int(declared) if isinstance(declared, NumberObject) else None
    seen: set[tuple[int, int]] = set()
    # Kids are resolved one at a time: a node with 600,000 kids costs only those walked.
    pending: list[tuple[ArrayObject, int]] = []
    node: DictionaryObject | None = tree
    pages = 0
    while node is not None or pending:
        if node is not None:
            kids = node.get("/Kids")
            if kids is None or node.get("/Type") == "/Page":
                pages += 1
                if pages > max_pages:
                    return {"code": "too_many_pages", "detail": f"more than {max_pages}"}
            else:
                kids = kids.get_object()
                if not isinstance(kids, ArrayObject):
                    return {"code": "unreadable_pdf", "detail": "/Kids is not an array"}
                pending.append((kids, 0))
            node = None
            continue
        kids, index = pending.pop()
        if index >= len(kids):
            continue
        pending.append((kids, index + 1))
        kid = kids[index]
        if isinstance(kid, IndirectObject):
            key = (kid.idnum, kid.generation)
            if key in seen:
                return {"code": "unreadable_pdf", "detail": "the page tree has a loop"}
            seen.add(key)
        child = kid.get_object()
        if not isinstance(child, DictionaryObject):
            return {"code": "unreadable_pdf", "detail": "a page is not a dictionary"}
        node = child
    if pages == 0:
        return {"code": "no_pages", "detail": ""}
    if declared_count is not None and declared_count != pages:
        return {
            "code": "unreadable_pdf",
            "detail": f"the page tree declares {declared_count} pages but holds {pages}",
        }
    return {"code": "ok", "pages": pages}
