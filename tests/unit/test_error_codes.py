"""One error vocabulary: every reason a job can fail with reads as a snake_case code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docjobs.domain.models import JobError, error_code

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("docjobs", "runner/src", "operator/src", "api/src")
# A reason is the first string given to an error the runner or operator records.
REASON = re.compile(
    r"""(?:reason=|PermanentError\(\s*|Error\(\s*)["']([A-Z][A-Za-z]+)["']""", re.MULTILINE
)
SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def reasons_in_sources() -> set[str]:
    found: set[str] = set()
    for folder in SOURCES:
        for path in (REPO / folder).rglob("*.py"):
            found.update(REASON.findall(path.read_text()))
    return found


def test_the_sources_name_reasons_at_all() -> None:
    # Guards the scan below: a pattern that matched nothing would pass vacuously.
    assert {"DeadlineExceeded", "RunnerCrashed", "UnreadableDocument"} <= reasons_in_sources()


@pytest.mark.parametrize("reason", sorted(reasons_in_sources()))
def test_every_reason_reads_as_a_snake_case_code(reason: str) -> None:
    code = JobError(reason=reason, message="", permanent=True).code
    assert SNAKE.fullmatch(code), (reason, code)


def test_codes_keep_words_and_acronyms_whole() -> None:
    assert error_code("PageRangeOutOfBounds") == "page_range_out_of_bounds"
    assert error_code("InvalidJSON") == "invalid_json"
    assert error_code("PDFUnreadable") == "pdf_unreadable"
    assert error_code("too_many_pages") == "too_many_pages"


def test_no_two_reasons_share_a_code() -> None:
    reasons = reasons_in_sources()
    codes = {error_code(reason) for reason in reasons}
    assert len(codes) == len(reasons)
