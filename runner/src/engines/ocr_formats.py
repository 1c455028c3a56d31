"""OCR results as hOCR (1.2) and ALTO (v4): the detailed pages' blocks, lines and words
with their boxes in pixels of the page image and their confidences.

Both are written a page at a time from the spooled page views, so a long document is never
held whole. A word without a confidence (vision models) is written without one; its box is
the share of its line's box the vision tier gave it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

HOCR_CONTENT_TYPE = "application/xhtml+xml"
ALTO_CONTENT_TYPE = "application/xml"
ALTO_NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
ALTO_SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
ENGINE_NAMES = {
    "ocr.simple": "Tesseract",
    "ocr.advanced": "docTR",
    "ocr.vision": "Claude vision",
    "ocr.auto": "Tesseract, docTR and Claude vision",
}
"""The engine of each OCR operation, as the formats' metadata names it."""

_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot hold, even escaped; a model's transcript may contain them."""


@dataclass(frozen=True)
class Pages:
    views: Iterator[dict[str, Any]]
    """Detailed page views, in page order."""
    count: int
    engine: str


def write_hocr(pages: Pages, out: IO[bytes]) -> None:
    """One XHTML document: ``ocr_page`` > ``ocr_carea`` > ``ocr_par`` > ``ocr_line`` >
    ``ocrx_word``, each with its ``bbox``; words with ``x_wconf`` (0-100) where known."""
    out.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"'
        ' "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n<head>\n'
        "<title>OCR result</title>\n"
        '<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>\n'
        f'<meta name="ocr-system" content="docjobs ({clean_text(pages.engine)})"/>\n'
        '<meta name="ocr-capabilities"'
        ' content="ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"/>\n'
        f'<meta name="ocr-number-of-pages" content="{pages.count}"/>\n'
        "</head>\n<body>\n".encode()
    )
    for index, view in enumerate(pages.views):
        out.write(ET.tostring(_hocr_page(view, index), encoding="unicode").encode() + b"\n")
    out.write(b"</body>\n</html>\n")


def _hocr_page(view: dict[str, Any], index: int) -> ET.Element:
    number = int(view["page"])
    page = ET.Element(
        "div",
        {
            "class": "ocr_page",
            "id": f"page_{number}",
            "title": f"bbox 0 0 {view.get('width', 0)} {view.get('height', 0)}; ppageno {index}",
        },
    )
    ids = {"block": 0, "line": 0, "word": 0}

    def next_id(kind: str) -> str:
        ids[kind] += 1
        return f"{kind}_{number}_{ids[kind]}"

    for block in _blocks(view):
        area = ET.SubElement(
            page, "div", {"class": "ocr_carea", "id": next_id("block"), "title": _bbox(block)}
        )
        paragraph = ET.SubElement(
            area, "p", {"class": "ocr_par", "id": f"par_{number}_{ids['block']}"}
        )
        paragraph.set("title", _bbox(block))
        for line in block["lines"]:
            span = ET.SubElement(paragraph, "span", {"class": "ocr_line", "id": next_id("line")})
            span.set("title", _bbox(line))
            for position, word in enumerate(line["words"]):
                title = _bbox(word)
                if word.get("confidence") is not None:
                    title += f"; x_wconf {round(float(word['confidence']))}"
                element = ET.SubElement(
                    span, "span", {"class": "ocrx_word", "id": next_id("word"), "title": title}
                )
                element.text = clean_text(str(word["text"]))
                element.tail = " " if position < len(line["words"]) - 1 else None
    return page


def _bbox(item: dict[str, Any]) -> str:
    box = item["bbox"]
    x, y = int(box["x"]), int(box["y"])
    return f"bbox {x} {y} {x + int(box['width'])} {y + int(box['height'])}"


def write_alto(pages: Pages, out: IO[bytes]) -> None:
    """One ALTO v4 document, measured in pixels: ``Page`` > ``PrintSpace`` > ``TextBlock`` >
    ``TextLine`` > ``String``; a page's ``PC`` and a string's ``WC`` are confidences 0-1."""
    out.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<alto xmlns="{ALTO_NAMESPACE}"'
        ' xmlns:xlink="http://www.w3.org/1999/xlink"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        f' xsi:schemaLocation="{ALTO_NAMESPACE} {ALTO_SCHEMA}">\n'
        "<Description>\n<MeasurementUnit>pixel</MeasurementUnit>\n"
        '<Processing ID="OCR_1"><processingCategory>contentGeneration</processingCategory>'
        "<processingSoftware><softwareName>"
        f"docjobs ({clean_text(pages.engine)})"
        "</softwareName></processingSoftware></Processing>\n"
        "</Description>\n<Layout>\n".encode()
    )
    for view in pages.views:
        out.write(ET.tostring(_alto_page(view), encoding="unicode").encode() + b"\n")
    out.write(b"</Layout>\n</alto>\n")


def _alto_page(view: dict[str, Any]) -> ET.Element:
    number = int(view["page"])
    width, height = str(view.get("width", 0)), str(view.get("height", 0))
    page = ET.Element(
        "Page",
        {"ID": f"page_{number}", "PHYSICAL_IMG_NR": str(number), "WIDTH": width, "HEIGHT": height},
    )
    if view.get("confidence") is not None:
        page.set("PC", _share(view["confidence"]))
    space = ET.SubElement(
        page, "PrintSpace", {"HPOS": "0", "VPOS": "0", "WIDTH": width, "HEIGHT": height}
    )
    ids = {"block": 0, "line": 0, "string": 0}

    def next_id(kind: str) -> str:
        ids[kind] += 1
        return f"{kind}_{number}_{ids[kind]}"

    for block in _blocks(view):
        text_block = ET.SubElement(space, "TextBlock", {"ID": next_id("block"), **_box(block)})
        for line in block["lines"]:
            text_line = ET.SubElement(text_block, "TextLine", {"ID": next_id("line"), **_box(line)})
            for position, word in enumerate(line["words"]):
                if position:
                    ET.SubElement(text_line, "SP")
                content = clean_text(str(word["text"]))
                string = ET.SubElement(
                    text_line, "String", {"ID": next_id("string"), **_box(word), "CONTENT": content}
                )
                if word.get("confidence") is not None:
                    string.set("WC", _share(word["confidence"]))
    return page


def _box(item: dict[str, Any]) -> dict[str, str]:
    box = item["bbox"]
    return {
        "HPOS": str(box["x"]),
        "VPOS": str(box["y"]),
        "WIDTH": str(box["width"]),
        "HEIGHT": str(box["height"]),
    }


def _share(confidence: float) -> str:
    """A 0-100 confidence as ALTO's 0-1."""
    return f"{min(max(float(confidence) / 100, 0.0), 1.0):.4g}"


def _blocks(view: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The page's blocks with their empty lines left out, and empty blocks: both formats
    need a word in every line."""
    for block in view.get("blocks") or []:
        lines = [line for line in block["lines"] if line["words"]]
        if lines:
            yield {**block, "lines": lines}


def clean_text(text: str) -> str:
    """``text`` without the characters XML cannot hold (nor Markdown show)."""
    return _NOT_IN_XML.sub("", text)
