"""The ``rules`` engine: deterministic extraction by labels, layout and patterns.

For each field:

1. With a ``regex`` hint, the regex alone decides: the first match (its capture group,
   or the whole match) that reads as the field's type.
2. Otherwise each of the field's labels (:mod:`extract_labels`) is looked for in every
   line. The value is the text after the label in its cell; when there is none, the next
   cell of the line (unless that is a label too: a header row), else the cell just below
   the label. Values on the label's line win over values below it, then more specific
   labels, then labels that start their cell, then earlier lines. A candidate that does
   not read as the field's type (a date, an amount) at its very start is passed over.
3. A string field named like a company (vendor, company, seller, supplier) that no label
   finds takes the document's first line that is not a title such as "INVOICE":
   letterheads print the issuer's name first. No other field guesses.

``list`` fields are read as tables by :mod:`extract_table`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import regex as regex_engine

from docjobs.bounded import Bounds
from docjobs.config import get_settings
from docjobs.runner.engines import PermanentError, extract_table
from docjobs.runner.engines.extract_labels import after_label, label_pattern, labels_for, read_value
from docjobs.runner.engines.extract_text import Cell, DocumentText, Line
from docjobs.templates.patterns import PatternTooComplex, check_compiles
from docjobs.templates.schema import TemplateField, TemplateSpec, shape_result

REGEX_TIMEOUT_SECONDS = 2.0
"""Seconds one regex hint may run over a document; a pattern that backtracks without end
fails the job instead of holding the worker until the attempt's deadline."""
MAX_REGEX_MATCHES = 1000
BELOW_LINES = 2
"""A value printed under its label is on one of the next two lines..."""
BELOW_HEIGHTS = 3.0
"""...and no further down than three label heights."""
_COMPANY_WORDS = ("vendor", "company", "seller", "supplier")
_TITLES = frozenset(
    {
        "invoice",
        "tax invoice",
        "commercial invoice",
        "proforma invoice",
        "receipt",
        "bill",
        "statement",
        "quote",
        "quotation",
        "estimate",
        "credit note",
        "purchase order",
        "delivery note",
    }
)


def extract_fields(spec: TemplateSpec, document: DocumentText) -> dict[str, Any]:
    """The template's fields read from ``document``, shaped as the job result."""
    check_patterns(spec)
    lines = document.lines
    finder = _LabelFinder(lines, spec.fields)
    values: dict[str, object] = {}
    for field in spec.fields:
        if field.type == "list":
            values[field.name] = extract_table.rows_of(field, lines)
        elif field.regex is not None:
            text = "\n".join(line.text for line in lines)
            values[field.name] = _by_regex(field, field.regex, text)
        else:
            value = finder.find(field)
            if value is None and _is_company(field):
                value = _letterhead(lines)
            values[field.name] = value
    return shape_result(spec.fields, values)


def check_patterns(spec: TemplateSpec) -> None:
    """Compile the template's patterns in a child process under the pattern ceilings before
    this process compiles them: a template may come from elsewhere than the API (a
    ``DocumentTemplate`` applied with kubectl), and a pattern past a ceiling fails the job
    for good, naming it, instead of taking the runner's memory."""
    patterns = [field.regex for field in spec.fields if field.regex is not None]
    if not patterns:
        return
    ceilings = get_settings().ceilings
    try:
        errors = check_compiles(
            patterns, Bounds(ceilings.pattern_seconds, ceilings.pattern_memory_mb)
        )
    except PatternTooComplex as exc:
        raise PermanentError("PatternTooComplex", str(exc)) from None
    if errors:
        raise PermanentError("InvalidTemplate", "; ".join(errors))


def _by_regex(field: TemplateField, pattern_text: str, text: str) -> object:
    pattern = regex_engine.compile(pattern_text)
    try:
        matches = pattern.finditer(text, timeout=REGEX_TIMEOUT_SECONDS)
        for count, match in enumerate(matches):
            found = match.group(1) if pattern.groups else match.group(0)
            value = read_value(field.type, found) if found else None
            if value is not None:
                return value
            if count >= MAX_REGEX_MATCHES:
                break
    except TimeoutError:
        raise PermanentError(
            "RegexTimeout",
            f"The regex of field {field.name!r} ran longer than {REGEX_TIMEOUT_SECONDS:g} s "
            "on this document; simplify it (avoid nested repetition such as (a+)+).",
        ) from None
    return None


class _LabelFinder:
    def __init__(self, lines: Sequence[Line], fields: Sequence[TemplateField]) -> None:
        self._lines = lines
        self._all_labels = [label_pattern(label) for f in fields for label in labels_for(f)]

    def find(self, field: TemplateField) -> object:
        best: tuple[tuple[int, int, int, int], object] | None = None
        for rank, label in enumerate(labels_for(field)):
            pattern = label_pattern(label)
            for index, line in enumerate(self._lines):
                for position, cell in enumerate(line.cells):
                    for match in pattern.finditer(cell.text):
                        anchored = 0 if not cell.text[: match.start()].strip() else 1
                        for proximity, text in self._value_texts(index, position, match):
                            value = read_value(field.type, text)
                            if value is None:
                                continue
                            key = (proximity, rank, anchored, index)
                            if best is None or key < best[0]:
                                best = (key, value)
                            break
        return best[1] if best is not None else None

    def _value_texts(
        self, index: int, position: int, match: re.Match[str]
    ) -> Iterator[tuple[int, str]]:
        """(0, text on the label's line) or, when the label ends its cell, (1, text below)."""
        line = self._lines[index]
        cell = line.cells[position]
        rest = after_label(cell.text[match.end() :])
        if rest:
            yield 0, rest
            return
        if position + 1 < len(line.cells):
            following = line.cells[position + 1].text
            if not self._is_label(following):
                yield 0, following
        below = self._cell_below(index, cell)
        if below is not None:
            yield 1, below.text

    def _is_label(self, text: str) -> bool:
        if text.rstrip().endswith(":"):
            return True
        for pattern in self._all_labels:
            match = pattern.match(text)
            if match is not None and not after_label(text[match.end() :]):
                return True
        return False

    def _cell_below(self, index: int, label: Cell) -> Cell | None:
        line = self._lines[index]
        reach = line.bottom + BELOW_HEIGHTS * (line.bottom - line.top)
        for below in self._lines[index + 1 : index + 1 + BELOW_LINES]:
            if below.page != line.page or below.top > reach:
                return None
            for cell in below.cells:
                if cell.left < label.right and label.left < cell.right:
                    return cell
        return None


def _is_company(field: TemplateField) -> bool:
    leaf = field.name.rsplit(".", 1)[-1].lower()
    return field.type == "string" and any(word in leaf for word in _COMPANY_WORDS)


def _letterhead(lines: Sequence[Line]) -> str | None:
    for line in lines:
        title = " ".join(re.sub(r"[^\w\s]", " ", line.text).lower().split())
        if title and title not in _TITLES:
            return line.cells[0].text
    return None
