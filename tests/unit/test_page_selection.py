"""Which pages a job reads: the selection the API checks and the runner reads again."""

from __future__ import annotations

import pytest

from docjobs.domain.pages import InvalidPageSelection, validate_pages


def test_page_selection() -> None:
    assert validate_pages(None, 3) == [1, 2, 3]
    assert validate_pages("1-3,5", 5) == [1, 2, 3, 5]
    assert validate_pages(" 4 , 1 - 2, 2 ", 4) == [4, 1, 2]


@pytest.mark.parametrize(
    ("pages", "code"),
    [
        ("6", "page_range_out_of_bounds"),
        ("1-3,4-9", "page_range_out_of_bounds"),
        ("0", "invalid_page_range"),
        ("3-1", "invalid_page_range"),
        ("a", "invalid_page_range"),
        # Past int()'s digit limit (4,300): still a refusal with its reason.
        pytest.param("9" * 5000, "page_range_out_of_bounds", id="5000-digits"),
        pytest.param("1-" + "9" * 5000, "page_range_out_of_bounds", id="range-to-5000-digits"),
        pytest.param("0" * 5000 + "6", "page_range_out_of_bounds", id="5000-leading-zeros"),
    ],
)
def test_bad_page_selection(pages: str, code: str) -> None:
    with pytest.raises(InvalidPageSelection) as caught:
        validate_pages(pages, 5)
    assert caught.value.code == code
    assert caught.value.message
    if code == "page_range_out_of_bounds":
        assert "5 pages" in caught.value.message
