"""Rendering text, Markdown, JSON and HTML to PDF, and what a hostile document cannot reach."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.request import urlopen

import pytest
from pypdf import PdfReader

from docjobs.domain.models import ConvertToPdf
from docjobs.runner.engines import EngineOutput, PermanentError
from docjobs.runner.engines.convert import to_pdf

Format = Literal["text", "html", "markdown", "json"]


def convert(tmp_path: Path, source_format: Format, data: str | bytes) -> EngineOutput:
    source = tmp_path / f"input.{source_format}"
    source.write_bytes(data.encode() if isinstance(data, str) else data)
    return to_pdf(ConvertToPdf(source_format=source_format), source, tmp_path)


def pdf_text(output: EngineOutput) -> str:
    reader = PdfReader(output.path)
    return "\n".join(page.extract_text() for page in reader.pages)


def embedded_files(output: EngineOutput) -> list[bytes]:
    """Files inside the PDF: document attachments and file-attachment annotations."""
    reader = PdfReader(output.path)
    files = [content for contents in reader.attachments.values() for content in contents]
    for page in reader.pages:
        for annotation in page.get("/Annots") or []:
            annotation = annotation.get_object()
            if annotation.get("/Subtype") == "/FileAttachment":
                spec = annotation["/FS"].get_object()
                files.append(spec["/EF"]["/F"].get_object().get_data())
    return files


def test_text_becomes_a_pdf_with_the_same_text(tmp_path: Path) -> None:
    text = "Invoice 2024-117\n  indented line <b>not bold</b> & more\nÄrger über Öl\n"
    output = convert(tmp_path, "text", text)
    assert output.path.read_bytes().startswith(b"%PDF-")
    assert (output.content_type, output.extension) == ("application/pdf", ".pdf")
    assert output.page_count == 1
    assert output.details == {"page_count": 1}
    extracted = pdf_text(output)
    assert "Invoice 2024-117" in extracted
    assert "<b>not bold</b> & more" in extracted
    assert "Ärger über Öl" in extracted


def test_long_text_runs_over_several_pages(tmp_path: Path) -> None:
    output = convert(tmp_path, "text", "\n".join(f"line {n}" for n in range(1, 201)))
    reader = PdfReader(output.path)
    assert output.page_count == len(reader.pages) > 1
    assert "line 200" in pdf_text(output)


def test_long_lines_wrap_instead_of_running_off_the_page(tmp_path: Path) -> None:
    output = convert(tmp_path, "text", "start " + "x" * 400 + " finish")
    page = PdfReader(output.path).pages[0]
    lines = page.extract_text().splitlines()
    assert len(lines) > 3
    assert "finish" in lines[-1]


def test_latin1_and_byte_order_marks_are_decoded(tmp_path: Path) -> None:
    assert "Café crème" in pdf_text(convert(tmp_path, "text", "Café crème".encode("latin-1")))
    extracted = pdf_text(convert(tmp_path, "text", "\ufeffBOM-free start".encode()))
    assert extracted.startswith("BOM-free start")


def test_markdown_headings_and_tables_are_rendered(tmp_path: Path) -> None:
    markdown = (
        "# Quarterly report\n\nSome *emphasis* here.\n\n"
        "| Region | Sales |\n|--------|------:|\n| North | 1200 |\n| South | 800 |\n"
    )
    extracted = pdf_text(convert(tmp_path, "markdown", markdown))
    assert "Quarterly report" in extracted
    assert "North" in extracted and "1200" in extracted
    # Rendered, not shown as Markdown source.
    assert "#" not in extracted and "|" not in extracted and "*" not in extracted


def test_raw_html_in_markdown_is_shown_not_executed(tmp_path: Path) -> None:
    extracted = pdf_text(convert(tmp_path, "markdown", "Hello <b>world</b>\n"))
    assert "<b>world</b>" in extracted


def test_json_is_pretty_printed(tmp_path: Path) -> None:
    output = convert(tmp_path, "json", '{"customer": {"name": "Zoë", "orders": [17, 18]}}')
    lines = [line.strip() for line in pdf_text(output).splitlines()]
    assert '"customer": {' in lines
    assert '"name": "Zoë",' in lines
    assert "17," in lines


def test_invalid_json_says_where(tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as caught:
        convert(tmp_path, "json", '{\n  "a": 1,\n  "b": \n}')
    assert caught.value.reason == "InvalidJSON"
    assert "line 4 column 1" in caught.value.message


@pytest.mark.parametrize("data", [b"", b"\n  \n", b"\xef\xbb\xbf"])
def test_empty_document_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(PermanentError) as caught:
        convert(tmp_path, "text", data)
    assert caught.value.reason == "EmptyDocument"


def test_html_is_rendered_as_given(tmp_path: Path) -> None:
    html = "<html><body><h1>Title</h1><p style='color:red'>Para one</p></body></html>"
    extracted = pdf_text(convert(tmp_path, "html", html))
    assert "Title" in extracted and "Para one" in extracted


def test_data_urls_still_work(tmp_path: Path) -> None:
    # Also shows that embedded_files() sees both kinds of attachment WeasyPrint writes.
    html = (
        '<html><head><link rel="attachment" href="data:text/plain,document%20note"></head>'
        '<body><a rel="attachment" href="data:text/plain,inline%20note">note</a>'
        '<img src="data:image/svg+xml,<svg xmlns=%22http://www.w3.org/2000/svg%22 '
        'width=%2210%22 height=%2210%22/>"></body></html>'
    )
    files = embedded_files(convert(tmp_path, "html", html))
    assert sorted(files) == [b"document note", b"inline note"]


# --- nothing is fetched ------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"body { color: red }")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every request it receives."""
    requests: list[str] = []
    handler = type("Handler", (_Recorder,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    # Prove the listener would notice a fetch, so "no requests" means something.
    urlopen(f"{base}/probe", timeout=5).read()
    assert requests == ["/probe"]
    requests.clear()
    try:
        yield base, requests
    finally:
        server.shutdown()
        server.server_close()


def test_html_cannot_make_the_renderer_fetch_urls(
    tmp_path: Path, listener: tuple[str, list[str]]
) -> None:
    base, requests = listener
    html = f"""<html><head>
      <link rel="stylesheet" href="{base}/link.css">
      <link rel="attachment" href="{base}/link-attachment.bin">
      <style>
        @import url("{base}/import.css");
        @font-face {{ font-family: Spy; src: url("{base}/font.woff"); }}
        body {{ font-family: Spy; background: url("{base}/background.png"); }}
        p::after {{ content: url("{base}/content.png"); }}
      </style></head><body>
      <p>Visible text</p>
      <img src="{base}/img.png">
      <svg xmlns="http://www.w3.org/2000/svg"><image href="{base}/svg-image.png"/></svg>
      <iframe src="{base}/iframe.html"></iframe>
      <object data="{base}/object.png"></object>
      <embed src="{base}/embed.png">
      <a rel="attachment" href="{base}/a-attachment.bin">file</a>
      <img src="//127.0.0.1:{base.rsplit(":", 1)[1]}/scheme-relative.png">
    </body></html>"""
    output = convert(tmp_path, "html", html)
    assert "Visible text" in pdf_text(output)
    assert requests == []


def test_markdown_cannot_make_the_renderer_fetch_urls(
    tmp_path: Path, listener: tuple[str, list[str]]
) -> None:
    base, requests = listener
    convert(tmp_path, "markdown", f"![chart]({base}/chart.png)\n\n[link]({base}/page)\n")
    assert requests == []


def test_html_cannot_read_local_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-7731")
    (tmp_path / "relative.txt").write_text("RELATIVE-SECRET-9912")
    targets = ["file:///etc/passwd", secret.as_uri()]
    tags = "".join(
        f'<link rel="attachment" href="{url}"><link rel="stylesheet" href="{url}">'
        f'<img src="{url}"><iframe src="{url}"></iframe><object data="{url}"></object>'
        f'<embed src="{url}"><a rel="attachment" href="{url}">attached</a>'
        for url in targets
    )
    html = (
        f"<html><head><style>@import url('{secret.as_uri()}');</style></head><body>"
        f'{tags}<a rel="attachment" href="relative.txt">relative</a>'
        f'<a rel="attachment" href="/etc/passwd">absolute path</a></body></html>'
    )
    output = convert(tmp_path, "html", html)
    assert embedded_files(output) == []
    leaked = output.path.read_bytes() + pdf_text(output).encode()
    for marker in (b"root:x:0:0", b"TOP-SECRET-7731", b"RELATIVE-SECRET-9912"):
        assert marker not in leaked


def test_base_element_does_not_reopen_the_filesystem(tmp_path: Path) -> None:
    html = (
        '<html><head><base href="file:///etc/"><link rel="attachment" href="passwd"></head>'
        '<body><a rel="attachment" href="passwd">x</a></body></html>'
    )
    output = convert(tmp_path, "html", html)
    assert embedded_files(output) == []
    assert b"root:x:0:0" not in output.path.read_bytes()


def test_absurdly_nested_html_fails_permanently(tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as caught:
        convert(tmp_path, "html", "<div>" * 5000 + "deep" + "</div>" * 5000)
    assert caught.value.reason == "DocumentTooComplex"


def test_refused_fetches_and_rendering_steps_stay_out_of_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "page.html"
    source.write_text(
        '<p>remote parts</p><img src="http://169.254.169.254/x.png">'
        '<link rel="stylesheet" href="file:///etc/passwd">'
    )
    with caplog.at_level("INFO"):
        to_pdf(ConvertToPdf(source_format="html"), source, tmp_path)
    assert [r for r in caplog.records if r.name.startswith("weasyprint")] == []
    broken = tmp_path / "broken.html"
    broken.write_text('<img src="data:image/png;base64,AAAA">')
    with caplog.at_level("INFO"):
        to_pdf(ConvertToPdf(source_format="html"), broken, tmp_path)
    # A resource that was served and turned out broken is still worth a line.
    assert any(r.levelname == "ERROR" for r in caplog.records if r.name == "weasyprint")
