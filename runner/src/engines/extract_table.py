"""``list`` fields of the rules engine: the rows of a table under a header line.

Best effort, for the common invoice table of one line per row:

* The header is the line where the most item fields find one of their labels, in at
  least two different cells (a sentence that happens to say "amount" and "date" is one
  cell). At least two items must be found, or the only one of a one-item list.
* Each header word is a column; a row's words go to the column whose span their middle
  falls in, the border between two columns being halfway between them.
* A line is a row when at least two of its item values read as their types (one for a
  one-item list), one of them not a string when the items have such a type. A line with
  text only in string columns, just under a row, continues that row's text (a wrapped
  description).
* The table ends at the first other line, at a totals line ("Subtotal", "Total", "Tax:"
  ...), or at the end of the page: a table continued on the next page is not followed.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from docjobs.runner.engines.extract_labels import label_pattern, labels_for, read_value
from docjobs.runner.engines.extract_text import Box, Line
from docjobs.templates.schema import TemplateField

MAX_ROWS = 1000
_TOTALS = re.compile(
    r"^\s*(sub-?\s?total|total|grand total|tax|vat|gst|balance|amount due|shipping|discount)"
    r"\b\s*(?:[:(]|$|[-\u2212$€£¥]|\d)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Column:
    item: TemplateField | None
    """``None`` for a header word no item claimed: it still keeps its text out of others."""
    left: float
    right: float


def rows_of(field: TemplateField, lines: Sequence[Line]) -> list[dict[str, object]] | None:
    """The table's rows keyed by item name; ``None`` when no header line is found."""
    header = _find_header(field.items, lines)
    if header is None:
        return None
    index, columns = header
    needed = min(2, len(field.items))
    typed = any(item.type != "string" for item in field.items)
    rows: list[dict[str, object]] = []
    previous = lines[index]
    for line in lines[index + 1 :]:
        if line.page != previous.page or len(rows) >= MAX_ROWS or _TOTALS.match(line.text):
            break
        texts = _column_texts(columns, line)
        row = {item.name: read_value(item.type, texts.get(item.name, "")) for item in field.items}
        found = [item for item in field.items if row[item.name] is not None]
        if len(found) >= needed and (not typed or any(i.type != "string" for i in found)):
            rows.append(row)
            previous = line
        elif rows and _continues(rows[-1], field.items, texts, previous, line):
            previous = line
        else:
            break
    return rows


def _find_header(
    items: Sequence[TemplateField], lines: Sequence[Line]
) -> tuple[int, list[_Column]] | None:
    best: tuple[int, list[_Column]] | None = None
    best_found = 0
    for index, line in enumerate(lines):
        columns = _header_columns(items, line)
        found = sum(column.item is not None for column in columns)
        if found >= min(2, len(items)) and found > best_found:
            best, best_found = (index, columns), found
    return best


def _header_columns(items: Sequence[TemplateField], line: Line) -> list[_Column]:
    words = line.words()
    text, starts = _joined(words)
    claimed: set[int] = set()
    columns: list[_Column] = []
    cells: set[int] = set()
    for item in items:
        for label in labels_for(item):
            span = _free_match(label, text, starts, claimed)
            if span is not None:
                claimed.update(span)
                columns.append(_Column(item, words[span[0]].left, words[span[-1]].right))
                cells.add(_cell_of(line, words[span[0]]))
                break
    if len(items) > 1 and len(cells) < 2:
        return []
    for position, word in enumerate(words):
        if position not in claimed:
            columns.append(_Column(None, word.left, word.right))
    return sorted(columns, key=lambda column: column.left)


def _joined(words: Sequence[Box]) -> tuple[str, list[int]]:
    starts, offset = [], 0
    for word in words:
        starts.append(offset)
        offset += len(word.text) + 1
    return " ".join(word.text for word in words), starts


def _free_match(
    label: str, text: str, starts: Sequence[int], claimed: set[int]
) -> list[int] | None:
    """Indexes of the unclaimed words ``label`` matches exactly, first match first."""
    for match in label_pattern(label).finditer(text):
        span = [
            position
            for position, start in enumerate(starts)
            if start < match.end() and match.start() < start + _word_length(text, start)
        ]
        if span and starts[span[0]] == match.start() and not claimed.intersection(span):
            return span
    return None


def _word_length(text: str, start: int) -> int:
    end = text.find(" ", start)
    return (len(text) if end < 0 else end) - start


def _cell_of(line: Line, word: Box) -> int:
    middle = (word.left + word.right) / 2
    for position, cell in enumerate(line.cells):
        if cell.left <= middle <= cell.right:
            return position
    return -1


def _column_texts(columns: Sequence[_Column], line: Line) -> dict[str, str]:
    borders = [(left.right + right.left) / 2 for left, right in itertools.pairwise(columns)]
    parts: dict[int, list[str]] = {}
    for word in line.words():
        middle = (word.left + word.right) / 2
        position = sum(middle > border for border in borders)
        parts.setdefault(position, []).append(word.text)
    return {
        column.item.name: " ".join(parts[position])
        for position, column in enumerate(columns)
        if column.item is not None and position in parts
    }


def _continues(
    row: dict[str, object],
    items: Sequence[TemplateField],
    texts: dict[str, str],
    previous: Line,
    line: Line,
) -> bool:
    """Append ``line`` to ``row`` when it is a wrapped string cell just under it."""
    strings = {item.name for item in items if item.type == "string"}
    if not texts or not strings.issuperset(texts):
        return False
    if line.top - previous.bottom > previous.bottom - previous.top:
        return False
    for name, text in texts.items():
        row[name] = f"{row[name]} {text}" if row[name] else text
    return True
