"""Patterns and PDF page trees are checked under ceilings: a pure bound on what a pattern
compiles to, and child processes limited in time and memory."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from pypdf._utils import logger_warning

from docjobs import documents
from docjobs.bounded import Bounds, CeilingReached, run_bounded
from docjobs.config import get_settings
from docjobs.documents import DocumentError, InspectionCeilings
from docjobs.pdf_pages import WARNINGS_PER_SECOND, limit_pypdf_warnings
from docjobs.runner.engines import PermanentError, extract_rules
from docjobs.templates.patterns import (
    MAX_EXPANSION,
    PatternTooComplex,
    check_compiles,
    expansion,
)
from docjobs.templates.schema import TemplateField, TemplateSpec
from tests.hostile_pdfs import page_tree_pdf

BOMB = "(?:(?:(?:(?:a{100}){100}){100}){100})"


def template(regex: str) -> TemplateSpec:
    return TemplateSpec(name="t", fields=[TemplateField(name="x", regex=regex)])


@pytest.mark.parametrize(
    "pattern",
    [
        BOMB,
        "x{4294967294}",  # one count: a 4 GB string
        "(?:a|(?:b{100})){100}",
        "(?x)(?:a{100}) {100}",  # verbose: the count stands apart from its group
        "(?:[]a]{100}){101}",
    ],
)
def test_a_pattern_that_compiles_to_too_much_is_refused_before_compiling(pattern: str) -> None:
    started = time.monotonic()
    with pytest.raises(ValidationError) as caught:
        template(pattern)
    assert caught.value.errors()[0]["type"] == "pattern_too_complex"
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    "pattern",
    [
        r"INV-(\d+)",
        r"\d{4}-\d{2}-\d{2}",
        r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}",
        r"(?:\d{1,3},){1,10}\d{3}",
        r"\p{Lu}{2}\d{4}",
        r"Total:?\s*(\S+)",
    ],
)
def test_value_patterns_pass(pattern: str) -> None:
    assert template(pattern).fields[0].regex == pattern
    assert expansion(pattern) <= MAX_EXPANSION


def test_the_compile_check_stops_at_the_memory_ceiling() -> None:
    with pytest.raises(PatternTooComplex) as caught:
        check_compiles([BOMB], Bounds(seconds=30, memory_mb=256))
    assert "256 MiB (DOCJOBS_CEILINGS__PATTERN_MEMORY_MB)" in str(caught.value)
    assert check_compiles([r"(\d+)", "(unclosed"], Bounds(30, 256)) == [
        "regex '(unclosed' does not compile: missing ) at position 9"
    ]


def test_the_runner_fails_a_pattern_past_the_ceiling_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As a template applied with kubectl could hold it: never validated by the API.
    field = TemplateField.model_construct(name="x", type="string", regex=BOMB, items=[])
    spec = TemplateSpec.model_construct(name="t", fields=[field])
    # Time enough that a busy machine still meets the memory ceiling first.
    monkeypatch.setenv("DOCJOBS_CEILINGS__PATTERN_SECONDS", "30")
    get_settings.cache_clear()
    try:
        with pytest.raises(PermanentError) as caught:
            extract_rules.check_patterns(spec)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert caught.value.reason == "PatternTooComplex"
    assert "DOCJOBS_CEILINGS__PATTERN_MEMORY_MB" in str(caught.value)


def test_a_child_past_its_ceilings_is_stopped() -> None:
    with pytest.raises(CeilingReached) as caught:
        run_bounded("builtins:bytearray", 1 << 31, Bounds(seconds=30, memory_mb=128))
    assert caught.value.ceiling == "memory"
    started = time.monotonic()
    with pytest.raises(CeilingReached) as caught:
        run_bounded("time:sleep", 60, Bounds(seconds=1, memory_mb=128))
    assert caught.value.ceiling == "seconds"
    assert time.monotonic() - started < 30  # the child would sleep 60 without its ceiling
    assert run_bounded("builtins:len", "four", Bounds(30, 128)) == 4


def test_pdf_pages_are_counted_up_to_the_ceiling(tmp_path: Path) -> None:
    path = tmp_path / "long.pdf"
    path.write_bytes(page_tree_pdf(30))
    assert documents.pdf_page_count(path, InspectionCeilings(max_pages=30)) == 30
    with pytest.raises(DocumentError) as caught:
        documents.pdf_page_count(path, InspectionCeilings(max_pages=29))
    assert (caught.value.status_code, caught.value.code) == (422, "too_many_pages")
    assert "29 pages (DOCJOBS_CEILINGS__MAX_PAGES)" in caught.value.message


def test_a_page_tree_short_of_its_count_is_unreadable(tmp_path: Path) -> None:
    for pages, declared in [(1, 100_000), (1, 5)]:
        path = tmp_path / "damaged.pdf"
        path.write_bytes(page_tree_pdf(pages, declared=declared))
        with pytest.raises(DocumentError) as caught:
            documents.pdf_page_count(path)
        assert (caught.value.status_code, caught.value.code) == (400, "unreadable_pdf")


def test_counting_past_the_time_ceiling_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "a.pdf"
    path.write_bytes(page_tree_pdf(2))
    with pytest.raises(DocumentError) as caught:
        documents.pdf_page_count(path, InspectionCeilings(seconds=0.001))
    assert caught.value.code == "document_too_complex"
    assert "DOCJOBS_CEILINGS__INSPECT_SECONDS" in caught.value.message


def test_pypdf_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    limit_pypdf_warnings()
    with caplog.at_level(logging.WARNING):
        for n in range(1000):
            logger_warning(f"odd object {n}", source="pypdf._reader")
    logged = [r for r in caplog.records if r.name.startswith("pypdf")]
    # The 1,000 fall in one or two one-second windows.
    assert 1 <= len(logged) <= 2 * WARNINGS_PER_SECOND
