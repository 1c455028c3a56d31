"""OCR with the real Tesseract on images rendered here, so the expected text is known."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfWriter

from docjobs.domain.models import OcrSimple
from docjobs.runner.engines import EngineOutput, PermanentError, raster
from docjobs.runner.engines.tesseract import extract
from tests.docs import png_claiming

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog while seven wizards\n"
    "quickly judge boxing matches near the river bank. Every morning\n"
    "the baker prepares fresh bread and sweet pastries for the market."
)


def render(text: str, mode: str = "L", size: tuple[int, int] = (1600, 400)) -> Image.Image:
    """Black text at roughly 12pt/300 DPI on a white (or transparent) background."""
    background: Any = (0, 0, 0, 0) if mode == "RGBA" else 255
    image = Image.new(mode, size, background)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 40)
    for number, line in enumerate(text.splitlines()):
        draw.text((60, 60 + 70 * number), line, font=font, fill="black" if mode == "RGBA" else 0)
    return image


def save(image: Image.Image, path: Path, **options: Any) -> Path:
    image.save(path, **options)
    return path


def ocr(source: Path, content_type: str, **params: Any) -> tuple[EngineOutput, dict[str, Any]]:
    output = extract(OcrSimple(**params), source, content_type, source.parent)
    return output, json.loads(output.path.read_bytes())


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+", text.lower())


def recovered(expected: str, actual: str) -> float:
    remaining = words(actual)
    found = 0
    for word in words(expected):
        if word in remaining:
            remaining.remove(word)
            found += 1
    return found / len(words(expected))


def test_png_text_is_recognised(tmp_path: Path) -> None:
    output, body = ocr(save(render(PARAGRAPH), tmp_path / "scan.png"), "image/png")
    assert (output.content_type, output.extension) == ("application/json", ".json")
    assert body["success"] is True
    data = body["data"]
    assert recovered(PARAGRAPH, data["text"]) >= 0.95
    assert data["page_count"] == 1 == output.page_count
    assert data["word_count"] == len(data["text"].split())
    [page] = data["pages"]
    assert page == {
        "page": 1,
        "text": data["text"],
        "word_count": data["word_count"],
        "confidence": page["confidence"],
    }
    assert page["confidence"] > 80, "clean print reads with high confidence"
    summary = {
        "mean": page["confidence"],
        "worst_page": 1,
        "worst_page_confidence": page["confidence"],
    }
    assert data["confidence"] == summary
    assert output.details == {
        "word_count": data["word_count"],
        "page_count": 1,
        "confidence": summary,
    }


def test_detailed_output_has_word_boxes(tmp_path: Path) -> None:
    image = render("Invoice number 4711\nTotal amount due")
    _, body = ocr(save(image, tmp_path / "scan.png"), "image/png", output="detailed")
    page = body["data"]["pages"][0]
    assert (page["width"], page["height"]) == image.size
    by_text = {word["text"]: word for word in page["words"]}
    assert {"Invoice", "4711", "Total", "due"} <= set(by_text)
    for word in page["words"]:
        assert 0 <= word["confidence"] <= 100
        box = word["bbox"]
        assert box["width"] > 0 and box["height"] > 0
        assert box["x"] + box["width"] <= image.width and box["y"] + box["height"] <= image.height
    # Reading order survives in the boxes: line 2 sits below line 1.
    assert by_text["Total"]["bbox"]["y"] > by_text["Invoice"]["bbox"]["y"] + 40
    assert by_text["4711"]["bbox"]["x"] > by_text["Invoice"]["bbox"]["x"]


def test_sideways_scan_is_turned_upright(tmp_path: Path) -> None:
    text = PARAGRAPH + "\nA fourth line gives orientation detection enough to go on."
    sideways = render(text, size=(1600, 420)).rotate(90, expand=True)
    _, body = ocr(save(sideways, tmp_path / "sideways.png"), "image/png")
    assert recovered(text, body["data"]["text"]) >= 0.9


def test_transparent_png_is_read_as_black_on_white(tmp_path: Path) -> None:
    image = render("Transparent background works", mode="RGBA", size=(1200, 200))
    _, body = ocr(save(image, tmp_path / "clear.png"), "image/png")
    assert recovered("Transparent background works", body["data"]["text"]) == 1


def test_selected_pdf_pages_only(tmp_path: Path) -> None:
    pages = [render(f"This is page {name}", size=(1000, 200)) for name in ("one", "two", "three")]
    pdf = save(
        pages[0], tmp_path / "doc.pdf", save_all=True, append_images=pages[1:], resolution=150
    )
    output, body = ocr(pdf, "application/pdf", pages="2-3")
    data = body["data"]
    assert data["page_count"] == 2 == output.page_count
    assert [page["page"] for page in data["pages"]] == [2, 3]
    assert "two" in data["pages"][0]["text"] and "three" in data["pages"][1]["text"]
    assert "one" not in data["text"]
    assert data["text"] == data["pages"][0]["text"] + "\n\n" + data["pages"][1]["text"]


def test_multi_page_tiff(tmp_path: Path) -> None:
    frames = [render(f"Frame {name} here", size=(900, 200)) for name in ("alpha", "bravo")]
    tiff = save(frames[0], tmp_path / "scan.tif", save_all=True, append_images=frames[1:])
    _, body = ocr(tiff, "image/tiff", pages="2")
    assert [page["page"] for page in body["data"]["pages"]] == [2]
    assert "bravo" in body["data"]["text"].lower()


# --- refusals: none of these should reach recognition ------------------------------------


def refusal(source: Path, content_type: str, **params: Any) -> PermanentError:
    with pytest.raises(PermanentError) as caught:
        extract(OcrSimple(**params), source, content_type, source.parent)
    assert caught.value.message
    return caught.value


def test_page_range_beyond_the_document(tmp_path: Path) -> None:
    source = save(render("one page"), tmp_path / "scan.png")
    error = refusal(source, "image/png", pages="1-2")
    assert error.reason == "PageRangeOutOfBounds"
    assert "1 page" in error.message


@pytest.mark.parametrize("language", ["xyz", "eng+xyz", "osd"])
def test_language_must_be_installed(tmp_path: Path, language: str) -> None:
    source = save(render("text"), tmp_path / "scan.png")
    error = refusal(source, "image/png", language=language)
    assert error.reason == "UnsupportedLanguage"
    assert "eng" in error.message


@pytest.mark.parametrize("size", [(50_000, 50_000), (12_000, 10_000)])
def test_decompression_bomb(tmp_path: Path, size: tuple[int, int]) -> None:
    source = tmp_path / "bomb.png"
    source.write_bytes(png_claiming(*size))
    assert refusal(source, "image/png").reason == "ImageTooLarge"


def pdf_bytes(pages: int, password: str | None = None) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)
    if password is not None:
        writer.encrypt(password, algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_password_protected_pdf(tmp_path: Path) -> None:
    source = tmp_path / "locked.pdf"
    source.write_bytes(pdf_bytes(1, password="secret"))
    assert refusal(source, "application/pdf").reason == "EncryptedDocument"


def test_truncated_pdf(tmp_path: Path) -> None:
    source = tmp_path / "half.pdf"
    data = pdf_bytes(4)
    source.write_bytes(data[: len(data) // 2])
    assert refusal(source, "application/pdf").reason == "UnreadableDocument"


def test_pdf_without_pages(tmp_path: Path) -> None:
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    data = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(data))
        data += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(data)
    data += b"xref\n0 3\n0000000000 65535 f \n"
    data += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    data += b"trailer\n<< /Size 3 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    source = tmp_path / "none.pdf"
    source.write_bytes(bytes(data))
    assert refusal(source, "application/pdf").reason == "EmptyDocument"


def test_text_file_is_not_ocr_input(tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("plain words")
    assert refusal(source, "text/plain").reason == "UnsupportedMediaType"


def test_huge_pdf_page_is_rendered_within_the_pixel_cap(tmp_path: Path) -> None:
    source = tmp_path / "poster.pdf"
    writer = PdfWriter()
    writer.add_blank_page(14_400, 14_400)  # 200 inches square: 3.6 gigapixels at 300 DPI
    with source.open("wb") as stream:
        writer.write(stream)
    (page,) = raster.iter_pages(source, "application/pdf", None)
    assert page.image.width * page.image.height <= raster.MAX_RENDER_PIXELS
    assert page.image.width > 6000
    assert page.dpi is not None and page.dpi < 50
