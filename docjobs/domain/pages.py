"""Page selections: which pages of a document a job reads (``OcrParams.pages``).

The API checks a selection against the document's page count before a job exists; the
runner and the schedulers read it again the same way, so all agree on what it selects.
"""

from __future__ import annotations

import re
from typing import Literal

_PAGE_SPAN = re.compile(r"^(\d+)(?:-(\d+))?$")


class InvalidPageSelection(ValueError):
    """A selection that is not page numbers and ranges of the document: ``code`` says
    which way (the API answers it as a 422 with that code)."""

    def __init__(
        self, code: Literal["invalid_page_range", "page_range_out_of_bounds"], message: str
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validate_pages(pages: str | None, page_count: int) -> list[int]:
    """1-based page numbers selected by ``pages`` ("1-3,5"), in order and without repeats.

    ``None`` or a blank string selects every page.
    """
    if pages is None or not pages.strip():
        return list(range(1, page_count + 1))
    selected: dict[int, None] = {}
    for part in pages.split(","):
        span = re.sub(r"\s+", "", part)
        shown = span if len(span) <= 40 else f"{span[:37]}..."
        match = _PAGE_SPAN.match(span)
        if match is None:
            raise InvalidPageSelection(
                "invalid_page_range", f"{shown!r} is not a page number or range."
            )
        first = _page_number(match[1], page_count)
        last = _page_number(match[2], page_count) if match[2] else first
        if first < 1:
            raise InvalidPageSelection("invalid_page_range", "Pages are numbered from 1.")
        if last < first and first <= page_count:
            raise InvalidPageSelection(
                "invalid_page_range",
                f"Page range {shown!r} ends before it starts; write the lower page first.",
            )
        if max(first, last) > page_count:
            raise InvalidPageSelection(
                "page_range_out_of_bounds",
                f"Page range {shown!r} goes past the end: the document has {_pages(page_count)}.",
            )
        selected.update(dict.fromkeys(range(first, last + 1)))
    return list(selected)


def _page_number(digits: str, page_count: int) -> int:
    """``digits`` as a number; any number past the last page reads as the page after it.

    A number with more digits than the page count is past the end whatever it is, and
    one of thousands of digits would pass int()'s limit (4,300) and fail as a 500.
    """
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= len(str(page_count)) else page_count + 1


def _pages(count: int) -> str:
    return "1 page" if count == 1 else f"{count} pages"
