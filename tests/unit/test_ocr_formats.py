"""OCR results as ALTO, hOCR and Markdown, checked by the formats' own rules: ALTO against
its v4 schema, hOCR with the hOCR spec's checker (hocr-spec) and the nesting hOCR 1.2 asks
for, Markdown for the headings, lists and paragraphs of a page read by the real Tesseract.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hocr_spec import HocrValidator
from lxml import etree
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from docjobs.domain.models import (
    EXIT_OK,
    InputRef,
    JobSpec,
    OcrAdvanced,
    OcrParams,
    OcrSimple,
    OcrVision,
    PagePart,
)
from docjobs.runner.engines import EngineOutput, ocr_output, tesseract
from docjobs.runner.execute import execute, execute_part, merge_parts
from docjobs.storage.local import LocalStore
from docjobs.usage.records import CPU_SECONDS
from tests.docs import FONTS, pdf_of_images, pdf_with_pages, sentence_lines, text_image

ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
SCHEMAS = Path(__file__).parent.parent / "schemas" / "alto"
XLINK_SCHEMA = "http://www.loc.gov/standards/xlink/xlink.xsd"
BULLET = "\u2022"
ITEMS = ["Payment received from the customer", "Budget summary for the project"]


class _OfflineSchemas(etree.Resolver):
    """The schema ALTO imports, from its vendored copy: validation never goes online."""

    def resolve(self, url: str | None, pubid: str | None, context: Any) -> Any:
        if url == XLINK_SCHEMA:
            return self.resolve_filename(str(SCHEMAS / "xlink.xsd"), context)
        return None


def alto_errors(document: bytes) -> list[str]:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_OfflineSchemas())
    schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "alto-4-4.xsd"), parser))
    schema.validate(etree.fromstring(document, etree.XMLParser(no_network=True)))
    return [str(error) for error in schema.error_log]


def hocr_errors(document: bytes) -> list[str]:
    """The hOCR spec checker's errors, and those of the checks it leaves out: well-formed
    XHTML, ``ocrx_word`` in ``ocr_line`` in ``ocr_par`` in ``ocr_carea`` in ``ocr_page``,
    boxes of four ordered integers inside their page, ``x_wconf`` 0-100, every class used
    named in ``ocr-capabilities``."""
    report = HocrValidator("standard").validate(io.BytesIO(document), filename="result.hocr")
    errors = [str(item) for item in report.items if item.level in ("ERROR", "FATAL")]
    root = etree.fromstring(document, etree.XMLParser(no_network=True))
    xhtml = {"h": "http://www.w3.org/1999/xhtml"}
    [capabilities] = root.xpath("//h:meta[@name='ocr-capabilities']/@content", namespaces=xhtml)
    if not root.xpath("//h:meta[@name='ocr-system']/@content", namespaces=xhtml):
        errors.append("no ocr-system")
    parents = {
        "ocrx_word": "ocr_line",
        "ocr_line": "ocr_par",
        "ocr_par": "ocr_carea",
        "ocr_carea": "ocr_page",
    }
    for element in root.xpath("//*[@class]"):
        kind = element.get("class")
        if kind not in capabilities.split():
            errors.append(f"{kind} not in ocr-capabilities")
        if kind in parents and element.getparent().get("class") != parents[kind]:
            errors.append(f"{element.get('id')}: {kind} outside {parents[kind]}")
        box = re.search(r"bbox (\d+) (\d+) (\d+) (\d+)(;|$)", element.get("title", ""))
        if box is None:
            errors.append(f"{element.get('id')}: no bbox")
            continue
        x0, y0, x1, y1 = map(int, box.groups()[:4])
        page = element.xpath("ancestor-or-self::*[@class='ocr_page']")[0]
        width, height = map(int, re.findall(r"bbox 0 0 (\d+) (\d+)", page.get("title"))[0])
        if not (0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height):
            errors.append(f"{element.get('id')}: bbox {x0} {y0} {x1} {y1} off its page")
        confidence = re.search(r"x_wconf (\d+)", element.get("title", ""))
        if confidence and not 0 <= int(confidence[1]) <= 100:
            errors.append(f"{element.get('id')}: x_wconf {confidence[1]}")
    return errors


def report_image() -> Image.Image:
    """A title in a large font, a paragraph, a bulleted list and another paragraph."""
    image = Image.new("L", (1700, 1000), 255)
    draw = ImageDraw.Draw(image)
    title = ImageFont.truetype(FONTS["sans"], 72)
    body = ImageFont.truetype(FONTS["sans"], 36)
    draw.text((100, 80), "Quarterly Report", font=title, fill=0)
    lines = [
        ((100, 230), "The warehouse received every shipment on schedule and the"),
        ((100, 286), "supplier sent the invoice with the delivery number."),
        ((100, 630), "The office meeting moved the transfer to the next quarter."),
    ]
    for position, line in lines:
        draw.text(position, line, font=body, fill=0)
    for number, item in enumerate(ITEMS):
        draw.text((100, 410 + 56 * number), BULLET, font=body, fill=0)
        draw.text((150, 410 + 56 * number), item, font=body, fill=0)
    return image


@pytest.fixture(scope="module")
def report_pages(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The report read once by Tesseract, as the detailed pages every format is made from."""
    scan = tmp_path_factory.mktemp("report") / "report.png"
    report_image().save(scan)
    return list(tesseract.read_pages(OcrSimple(output="detailed"), scan, "image/png"))


def formatted(operation: OcrParams, pages: list[dict[str, Any]], workdir: Path) -> EngineOutput:
    workdir.mkdir(exist_ok=True)
    return ocr_output.finish(operation, iter(pages), workdir / "input", "", workdir)


def words_of(pages: list[dict[str, Any]]) -> list[str]:
    return [word for page in pages for word in page["text"].split()]


def test_alto_is_valid_alto_v4_with_every_word_and_its_confidence(
    report_pages: list[dict[str, Any]], tmp_path: Path
) -> None:
    output = formatted(OcrSimple(output="alto"), report_pages, tmp_path)

    assert (output.content_type, output.extension) == ("application/xml", ".xml")
    document = output.path.read_bytes()
    assert alto_errors(document) == []
    root = etree.fromstring(document)
    assert root.findtext(f"{ALTO}Description/{ALTO}MeasurementUnit") == "pixel"
    strings = root.iter(f"{ALTO}String")
    assert [s.get("CONTENT") for s in strings] == words_of(report_pages)
    [page] = root.iter(f"{ALTO}Page")
    assert float(page.get("PC")) == pytest.approx(report_pages[0]["confidence"] / 100, abs=1e-3)
    assert (page.get("WIDTH"), page.get("HEIGHT")) == ("1700", "1000")
    confidences = [float(s.get("WC")) for s in root.iter(f"{ALTO}String")]
    assert all(0 <= c <= 1 for c in confidences) and sum(confidences) / len(confidences) > 0.8


def test_hocr_passes_the_hocr_checks_with_every_word(
    report_pages: list[dict[str, Any]], tmp_path: Path
) -> None:
    output = formatted(OcrSimple(output="hocr"), report_pages, tmp_path)

    assert (output.content_type, output.extension) == ("application/xhtml+xml", ".hocr")
    document = output.path.read_bytes()
    assert hocr_errors(document) == []
    root = etree.fromstring(document)
    xhtml = "{http://www.w3.org/1999/xhtml}"
    words = [w for w in root.iter(f"{xhtml}span") if w.get("class") == "ocrx_word"]
    assert [w.text for w in words] == words_of(report_pages)
    assert all(re.search(r"; x_wconf \d+$", w.get("title")) for w in words)


def test_markdown_has_the_heading_list_and_paragraphs(
    report_pages: list[dict[str, Any]], tmp_path: Path
) -> None:
    output = formatted(OcrSimple(output="markdown"), report_pages, tmp_path)

    assert (output.content_type, output.extension) == ("text/markdown; charset=utf-8", ".md")
    blocks = output.path.read_text().strip().split("\n\n")
    assert blocks == [
        "<!-- page 1 -->",
        "# Quarterly Report",
        "The warehouse received every shipment on schedule and the supplier sent the invoice "
        "with the delivery number.",
        "\n".join(f"- {item}" for item in ITEMS),
        "The office meeting moved the transfer to the next quarter.",
    ]


def test_words_without_confidence_and_hostile_text_stay_valid_in_every_format(
    tmp_path: Path,
) -> None:
    """Vision models give no confidence; a transcript may hold markup and control
    characters."""
    lines = [["Total", "<b>&amp;", "\x0cdue"], ["*starred*", "[link]"], ["#", "not", "heading"]]
    blocks = [
        [
            [
                ocr_output.Word(text, None, 100 + 120 * i, 100 + 60 * row, 100, 40)
                for i, text in enumerate(line)
            ]
        ]
        for row, line in enumerate(lines)
    ]
    pages = [ocr_output.page_view(n, (1000, 800), blocks, detailed=True) for n in (1, 2)]
    assert [page["confidence"] for page in pages] == [None, None]

    alto = formatted(OcrVision(output="alto"), pages, tmp_path / "alto")
    assert alto_errors(alto.path.read_bytes()) == []
    assert b"WC=" not in alto.path.read_bytes() and b"PC=" not in alto.path.read_bytes()
    hocr = formatted(OcrVision(output="hocr"), pages, tmp_path / "hocr")
    assert hocr_errors(hocr.path.read_bytes()) == []
    assert b"x_wconf" not in hocr.path.read_bytes()
    assert b"docjobs (Claude vision)" in hocr.path.read_bytes()
    markdown = formatted(OcrVision(output="markdown"), pages, tmp_path / "md")
    assert "Total \\<b\\>\\&amp; due" in markdown.path.read_text()  # no entity, no form feed
    assert "\\*starred\\* \\[link\\]" in markdown.path.read_text()
    assert "\n\\# not heading\n" in markdown.path.read_text()
    assert alto.details["confidence"] is None


def poor_scan_of(page: Image.Image) -> Image.Image:
    """The page as a blurred scan at a fifth of its resolution: still legible, barely."""
    width, height = page.size
    return (
        page.filter(ImageFilter.GaussianBlur(0.5))
        .resize((int(width * 0.22), int(height * 0.22)), Image.Resampling.BILINEAR)
        .resize((width, height), Image.Resampling.NEAREST)
    )


def test_a_degraded_page_reads_with_less_confidence_than_a_clean_one(tmp_path: Path) -> None:
    clean = text_image(sentence_lines(seed=5, lines=6), size=32)
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(pdf_of_images([clean, poor_scan_of(clean)]))

    output = tesseract.extract(OcrSimple(), scan, "application/pdf", tmp_path)

    data = json.loads(output.path.read_bytes())["data"]
    good, bad = (page["confidence"] for page in data["pages"])
    assert good > 90 and bad is not None and bad < good - 15, (good, bad)
    summary = {"mean": round((good + bad) / 2, 2), "worst_page": 2, "worst_page_confidence": bad}
    assert data["confidence"] == summary == output.details["confidence"]


def test_a_document_read_in_parts_merges_into_the_alto_of_one_reading(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    document, _ = pdf_with_pages(2, seed=7)
    store.put_bytes("acme/scan.pdf", document, "application/pdf")

    def spec(job_id: str) -> JobSpec:
        scan = {"file_name": "scan.pdf", "content_type": "application/pdf", "page_count": 2}
        return JobSpec(
            job_id=job_id,
            tenant="acme",
            operation={"kind": "ocr.simple", "output": "alto"},
            input=InputRef(key="acme/scan.pdf", sha256="0", size=1, **scan),
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )

    whole = execute(spec("job_" + "a" * 24), 1, store)
    apart = spec("job_" + "b" * 24)
    for index in (1, 0):
        part = PagePart(index=index, pages=str(index + 1))
        assert execute_part(apart, 1, part, store, record_failure=False).exit_code == EXIT_OK
    merged = merge_parts(apart, 1, 2, store)

    assert merged.exit_code == EXIT_OK
    assert whole.summary.result is not None and merged.summary.result is not None
    assert merged.summary.result.key.endswith("/result.xml")
    assert merged.summary.result.content_type == "application/xml"
    result = b"".join(store.iter_chunks(merged.summary.result.key))
    assert result == b"".join(store.iter_chunks(whole.summary.result.key))
    assert alto_errors(result) == []
    # The same details, but for the CPU time each took.
    unmetered = {CPU_SECONDS: 0}
    assert merged.summary.details | unmetered == whole.summary.details | unmetered
    assert merged.summary.details["confidence"]["mean"] > 80


def test_docTR_pages_are_valid_alto_and_hocr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("doctr", reason="the doctr extra is not installed")
    from docjobs.config import get_settings
    from docjobs.runner.engines import doctr_ocr
    from tests.doctr_weights import DETECTION_ARCH, RECOGNITION_ARCH, save_stand_in_weights

    weights = save_stand_in_weights(tmp_path / "weights")
    monkeypatch.setenv("DOCJOBS_DOCTR__WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("DOCJOBS_DOCTR__DETECTION_ARCH", DETECTION_ARCH)
    monkeypatch.setenv("DOCJOBS_DOCTR__RECOGNITION_ARCH", RECOGNITION_ARCH)
    get_settings.cache_clear()
    scan = tmp_path / "report.png"
    text_image(["Quarterly report"], width=500).save(scan)
    try:
        operation = OcrAdvanced(output="detailed")
        pages = list(doctr_ocr.read_pages(operation, scan, "image/png"))
    finally:
        get_settings.cache_clear()

    assert pages[0]["words"], "the stand-in weights find words"
    assert 0 <= pages[0]["confidence"] <= 100
    alto = formatted(OcrAdvanced(output="alto"), pages, tmp_path / "alto")
    assert alto_errors(alto.path.read_bytes()) == []
    hocr = formatted(OcrAdvanced(output="hocr"), pages, tmp_path / "hocr")
    assert hocr_errors(hocr.path.read_bytes()) == []
    assert b"docjobs (docTR)" in hocr.path.read_bytes()
    markdown = formatted(OcrAdvanced(output="markdown"), pages, tmp_path / "md")
    assert markdown.path.read_text().startswith("<!-- page 1 -->\n\n")
