"""Splitting a document's selected pages into parts that separate workers read at once.

A part is a page selection in the notation of ``OcrParams.pages`` ("1-5", "2,4,6-8"), so a
runner reads its part exactly as it would read a job that asked for those pages.
"""

from __future__ import annotations

from collections.abc import Sequence

from docjobs.domain.engines import splittable
from docjobs.domain.models import JobSpec
from docjobs.domain.pages import InvalidPageSelection, validate_pages


def plan_parts(spec: JobSpec, part_pages: int, more_than: int) -> list[str]:
    """The page selections of the parts ``spec``'s document is read in, apart and at once:
    none unless its operation reads page by page and selects more than ``more_than`` pages."""
    operation = spec.operation
    if part_pages < 1 or not spec.input.page_count or not splittable(operation):
        return []
    try:
        selected = validate_pages(operation.pages, spec.input.page_count)
    except InvalidPageSelection:
        return []  # the runner reports the bad selection as the job's failure
    return page_parts(selected, part_pages) if len(selected) > more_than else []


def page_parts(pages: Sequence[int], part_size: int) -> list[str]:
    """``pages`` (in reading order) cut into runs of at most ``part_size`` pages."""
    if part_size < 1:
        raise ValueError("a part holds at least one page")
    return [
        selection(pages[start : start + part_size]) for start in range(0, len(pages), part_size)
    ]


def selection(pages: Sequence[int]) -> str:
    """``pages`` as a selection string, consecutive numbers as ranges: [1,2,3,5] -> "1-3,5"."""
    spans: list[list[int]] = []
    for number in pages:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def selection_size(pages: str) -> int:
    """Pages in a selection made by :func:`selection`, which names each page once."""
    count = 0
    for span in pages.split(","):
        first, _, last = span.partition("-")
        count += int(last or first) - int(first) + 1
    return count
