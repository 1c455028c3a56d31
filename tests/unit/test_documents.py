"""What the API tells a user about an upload before any job runs."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfWriter

from docjobs import documents
from docjobs.documents import DocumentError, Inspection
from tests.docs import png_claiming


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def pdf_bytes(pages: int = 2, password: str | None = None) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)
    if password is not None:
        writer.encrypt(password, "owner-secret", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def image_bytes(fmt: str, frames: int = 1) -> bytes:
    images = [Image.new("L", (200, 100), 255 - 40 * i) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, fmt, save_all=frames > 1, append_images=images[1:])
    return buffer.getvalue()


def pdf_without_pages() -> bytes:
    """A well-formed PDF whose page tree is empty (hand-written: writers refuse to)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


# --- content type sniffing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7\n...", "application/pdf"),
        (b"\r\n\xef\xbb\xbfjunk before the header %PDF-1.4", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"II*\x00\x08\x00", "image/tiff"),
        (b"MM\x00*\x00\x00", "image/tiff"),
    ],
)
def test_magic_bytes_win_over_what_the_client_declares(head: bytes, expected: str) -> None:
    assert documents.sniff_content_type(head, "text/plain", "notes.txt") == expected


def test_unknown_bytes_fall_back_to_declared_type_then_extension() -> None:
    assert documents.sniff_content_type(b"hello", "text/markdown; charset=utf-8", None) == (
        "text/markdown"
    )
    assert documents.sniff_content_type(b"hello", "application/octet-stream", "a.JSON") == (
        "application/json"
    )
    assert documents.sniff_content_type(b"hello", None, "scan.tif") == "image/tiff"
    assert documents.sniff_content_type(b"hello", None, None) == "application/octet-stream"


# --- OCR input ---------------------------------------------------------------------------


def test_pdf_page_count(tmp_path: Path) -> None:
    path = write(tmp_path, "a.pdf", pdf_bytes(pages=3))
    assert documents.inspect_for_ocr(path, "application/octet-stream", "a.pdf") == Inspection(
        "application/pdf", 3
    )


@pytest.mark.parametrize(
    ("fmt", "content_type", "frames"),
    [("PNG", "image/png", 1), ("JPEG", "image/jpeg", 1), ("TIFF", "image/tiff", 4)],
)
def test_image_page_count(tmp_path: Path, fmt: str, content_type: str, frames: int) -> None:
    path = write(tmp_path, "upload.bin", image_bytes(fmt, frames))
    assert documents.inspect_for_ocr(path, None, None) == Inspection(content_type, frames)


def expect_error(
    status_code: int, code: str, call: Callable[..., object], *args: object
) -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        call(*args)
    assert (caught.value.status_code, caught.value.code) == (status_code, code)
    assert caught.value.message
    return caught.value


def test_empty_upload_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.pdf", b"")
    expect_error(400, "empty_file", documents.inspect_for_ocr, path, "application/pdf", None)


def test_text_is_not_ocr_input(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.txt", b"just words")
    error = expect_error(
        415, "unsupported_media_type", documents.inspect_for_ocr, path, "text/plain", "notes.txt"
    )
    assert "text/plain" in error.message


def test_password_protected_pdf_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.pdf", pdf_bytes(password="secret"))
    expect_error(400, "encrypted_pdf", documents.inspect_for_ocr, path, None, None)


def test_pdf_encrypted_with_an_empty_password_is_accepted(tmp_path: Path) -> None:
    # Only an owner password (printing/copying restrictions): opens without a prompt.
    path = write(tmp_path, "restricted.pdf", pdf_bytes(pages=2, password=""))
    assert documents.inspect_for_ocr(path, None, None).page_count == 2


def test_truncated_pdf_is_refused_as_unreadable(tmp_path: Path) -> None:
    data = pdf_bytes(pages=5)
    path = write(tmp_path, "half.pdf", data[: len(data) // 2])
    expect_error(400, "unreadable_pdf", documents.inspect_for_ocr, path, None, None)


def test_garbage_declared_as_pdf_is_unreadable(tmp_path: Path) -> None:
    path = write(tmp_path, "x.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 20)
    expect_error(400, "unreadable_pdf", documents.inspect_for_ocr, path, None, None)


def test_pdf_without_pages_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "none.pdf", pdf_without_pages())
    expect_error(400, "no_pages", documents.inspect_for_ocr, path, None, None)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("size", [(50_000, 50_000), (12_000, 10_000)])
def test_decompression_bomb_is_refused_from_its_header(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    # 50000x50000 trips Pillow's own bomb error; 120 MP only our 100 MP cap.
    path = write(tmp_path, "bomb.png", png_claiming(*size))
    assert path.stat().st_size < 200
    error = expect_error(400, "image_too_large", documents.inspect_for_ocr, path, None, None)
    assert "100 megapixels" in error.message


def test_damaged_image_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    expect_error(400, "unreadable_image", documents.inspect_for_ocr, path, None, None)


# --- language ---------------------------------------------------------------------------


def test_installed_languages() -> None:
    languages = documents.installed_tesseract_languages()
    assert {"eng", "deu", "fra"} <= languages
    assert "osd" not in languages
    documents.check_language("eng")
    documents.check_language("eng+deu")


def test_unknown_language_lists_the_available_ones() -> None:
    error = expect_error(422, "unsupported_language", documents.check_language, "eng+klingon")
    assert "klingon" in error.message
    assert "eng" in error.message.split("available")[1]


# --- conversion input --------------------------------------------------------------------


def test_conversion_input(tmp_path: Path) -> None:
    text = write(tmp_path, "a.md", "# Überschrift\n".encode())
    assert documents.inspect_for_conversion(text, "markdown") == Inspection("text/markdown", None)
    latin1 = write(tmp_path, "b.txt", "Café crème".encode("latin-1"))
    assert documents.inspect_for_conversion(latin1, "text").content_type == "text/plain"
    data = write(tmp_path, "c.json", b'\xef\xbb\xbf{"a": [1, 2]}')
    prose = write(tmp_path, "d.md", b"# PDF files\n\nThey start with `%PDF-1.7`.\n")
    assert documents.inspect_for_conversion(prose, "markdown").content_type == "text/markdown"
    assert documents.inspect_for_conversion(data, "json").content_type == "application/json"


@pytest.mark.parametrize("data", [b"", b"  \n\t ", b"\xef\xbb\xbf\n"])
def test_empty_conversion_input(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, "empty.txt", data)
    expect_error(400, "empty_file", documents.inspect_for_conversion, path, "text")


def test_binary_uploaded_as_text_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "photo.txt", image_bytes("PNG"))
    error = expect_error(
        415, "unsupported_media_type", documents.inspect_for_conversion, path, "text"
    )
    assert "image/png" in error.message
    utf16 = write(tmp_path, "utf16.txt", "hello".encode("utf-16"))
    expect_error(415, "unsupported_media_type", documents.inspect_for_conversion, utf16, "html")
    pdf = write(tmp_path, "doc.txt", pdf_bytes(pages=1))
    expect_error(415, "unsupported_media_type", documents.inspect_for_conversion, pdf, "text")


def test_invalid_json_says_where(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", b'{\n  "a": 1,\n  "b": }\n')
    error = expect_error(400, "invalid_json", documents.inspect_for_conversion, path, "json")
    assert "line 3 column 8" in error.message


@pytest.mark.parametrize("data", [b"[" * 100_000 + b"]" * 100_000, b"1" * 5000])
def test_json_too_deep_or_too_long_is_invalid(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, "hostile.json", data)
    expect_error(400, "invalid_json", documents.inspect_for_conversion, path, "json")
