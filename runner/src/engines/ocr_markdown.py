"""OCR results as Markdown: the pages' blocks in reading order, as headings, paragraphs and
lists.

What the OCR tiers give is text with boxes, not structure, so the structure is inferred:

- a block of at most :data:`HEADING_MAX_LINES` lines whose lines are at least
  :data:`HEADING_RATIO` times as tall as the page's median line is a heading, ``#`` from
  :data:`TITLE_RATIO` times on, ``##`` below that;
- a line that starts with a bullet (``-``, ``*``, ``+``, ``•`` and the like) or a number
  (``1.``, ``2)``) starts a list item; the lines after it in its block continue the item;
- every other block is a paragraph, its lines joined (a word hyphenated across lines
  joined again).

No tier gives table structure, so tables come out as their cells' text, one paragraph per
block. Each page begins with an HTML comment naming it (``<!-- page 3 -->``).
"""

from __future__ import annotations

import re
from statistics import median
from typing import IO, Any

from docjobs.runner.engines.ocr_formats import Pages, clean_text

CONTENT_TYPE = "text/markdown; charset=utf-8"
HEADING_RATIO = 1.25
TITLE_RATIO = 1.6
HEADING_MAX_LINES = 2
_BULLETS = "-*+\u2022\u00b7\u25aa\u25e6\u2023\u25cf\u25cb\u25a0\u25a1\u2013\u2014\u00a2"
"""ASCII bullets; bullets, squares, circles and dashes as fonts draw them; and the cent sign,
which is how Tesseract often reads a round bullet."""
_LIST_ITEM = re.compile(
    rf"^(?:(?P<bullet>[{re.escape(_BULLETS)}])|(?P<number>\d{{1,3}})[.)])\s+(?P<text>\S.*)$"
)
_SPECIAL = re.compile(r"([\\`*_\[\]<>|]|&(?=#?\w+;))")
"""What Markdown would read as emphasis, code, links, HTML or an entity."""
_LEADING_MARKUP = re.compile(r"^(?:(?P<mark>[#>]|[-+=](?=\s|$))|\d{1,3}(?P<dot>[.)])(?=\s|$))")
"""What would make a paragraph's start a heading, quote, list item or rule."""


def write_markdown(pages: Pages, out: IO[bytes]) -> None:
    for index, view in enumerate(pages.views):
        if index:
            out.write(b"\n")
        out.write(f"<!-- page {int(view['page'])} -->\n\n".encode())
        for part in page_markdown(view):
            out.write(part.encode() + b"\n\n")


def page_markdown(view: dict[str, Any]) -> list[str]:
    """The page's headings, paragraphs and lists, one Markdown string each."""
    blocks = [
        [line for line in block["lines"] if line["words"]] for block in view.get("blocks") or []
    ]
    blocks = [block for block in blocks if block]
    heights = [_height(line) for block in blocks for line in block]
    body = median(heights) if heights else 0.0
    parts: list[str] = []
    listed = False
    """Whether the last part is a list, which a block of list items continues."""
    for block in blocks:
        level = _heading_level(block, body)
        if level:
            parts.append("#" * level + " " + _escape(" ".join(_text(line) for line in block)))
            listed = False
            continue
        paragraph, items = _block_markdown(block)
        if paragraph:
            parts.append(paragraph)
        if items and listed and not paragraph:
            parts[-1] += "\n" + items
        elif items:
            parts.append(items)
        listed = bool(items)
    return parts


def _heading_level(block: list[dict[str, Any]], body: float) -> int:
    if len(block) > HEADING_MAX_LINES or body <= 0:
        return 0
    if any(_LIST_ITEM.match(_text(line)) for line in block):
        return 0
    ratio = median(_height(line) for line in block) / body
    if ratio >= TITLE_RATIO:
        return 1
    return 2 if ratio >= HEADING_RATIO else 0


def _block_markdown(block: list[dict[str, Any]]) -> tuple[str, str]:
    """The block's paragraph (the lines before its first list item) and list items, each
    ``""`` where there is none."""
    paragraph: list[str] = []
    items: list[tuple[str, list[str]]] = []
    """Each item's marker and its lines."""
    for line in block:
        text = _text(line)
        item = _LIST_ITEM.match(text)
        if item:
            marker = "-" if item["bullet"] else f"{item['number']}."
            items.append((marker, [item["text"]]))
        elif items:
            items[-1][1].append(text)
        else:
            paragraph.append(text)
    listed = "\n".join(f"{marker} {_escape(_joined(lines))}" for marker, lines in items)
    return _escape(_joined(paragraph)), listed


def _joined(lines: list[str]) -> str:
    text = ""
    for line in lines:
        if re.search(r"\w-$", text) and line[:1].islower():
            text = text[:-1] + line  # a word hyphenated at the line's end
        else:
            text = f"{text} {line}" if text else line
    return text


def _escape(text: str) -> str:
    escaped = _SPECIAL.sub(r"\\\1", clean_text(text))
    markup = _LEADING_MARKUP.match(escaped)
    if markup is None:
        return escaped
    at = markup.start("mark") if markup["mark"] else markup.start("dot")
    return escaped[:at] + "\\" + escaped[at:]


def _text(line: dict[str, Any]) -> str:
    return " ".join(str(word["text"]) for word in line["words"])


def _height(line: dict[str, Any]) -> float:
    return float(line["bbox"]["height"])
