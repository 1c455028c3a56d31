"""Office documents made in the tests: by python-docx, openpyxl and python-pptx, and
OpenDocument text written by hand where a test needs what those libraries cannot make (a
Basic macro run on load, an image linked from a URL)."""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape, quoteattr

from docx import Document
from openpyxl import Workbook
from pptx import Presentation
from pptx.util import Inches

ODT = "application/vnd.oasis.opendocument.text"
_NAMESPACES = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
    ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
    ' xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"'
    ' xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"'
    ' xmlns:script="urn:oasis:names:tc:opendocument:xmlns:script:1.0"'
    ' xmlns:xlink="http://www.w3.org/1999/xlink"'
    ' xmlns:dom="http://www.w3.org/2001/xml-events"'
    ' xmlns:ooo="http://openoffice.org/2004/office"'
)


def docx(*paragraphs: str) -> bytes:
    document = Document()
    document.add_heading(paragraphs[0], level=1)
    for paragraph in paragraphs[1:]:
        document.add_paragraph(paragraph)
    return _saved(document)


def xlsx(rows: list[list[object]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    return _saved(workbook)


def pptx(title: str, body: str) -> bytes:
    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = title
    slide.placeholders[1].text = body
    box = slide.shapes.add_textbox(Inches(1), Inches(6), Inches(6), Inches(1))
    box.text_frame.text = body.upper()
    return _saved(presentation)


def odt(paragraph: str, *, body_extra: str = "", macro: str | None = None) -> bytes:
    """OpenDocument text; ``macro``: Basic code of ``Sub Main``, bound to the load event."""
    scripts = ""
    entries = {"content.xml": ""}
    if macro is not None:
        scripts = (
            "<office:scripts><office:event-listeners>"
            '<script:event-listener script:language="ooo:script" script:event-name="dom:load"'
            ' xlink:type="simple" xlink:href="vnd.sun.star.script:Standard.Module1.Main'
            '?language=Basic&amp;location=document"/>'
            "</office:event-listeners></office:scripts>"
        )
        entries |= {
            "Basic/script-lc.xml": (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<library:libraries xmlns:library="http://openoffice.org/2000/library"'
                ' xmlns:xlink="http://www.w3.org/1999/xlink">'
                '<library:library library:name="Standard" library:link="false"/>'
                "</library:libraries>"
            ),
            "Basic/Standard/script-lb.xml": (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<library:library xmlns:library="http://openoffice.org/2000/library"'
                ' library:name="Standard" library:readonly="false"'
                ' library:passwordprotected="false">'
                '<library:element library:name="Module1"/></library:library>'
            ),
            "Basic/Standard/Module1.xml": (
                '<?xml version="1.0" encoding="UTF-8"?>'
                '<script:module xmlns:script="http://openoffice.org/2000/script"'
                ' script:name="Module1" script:language="StarBasic" script:moduleType="normal">'
                f"Sub Main\n{escape(macro)}\nEnd Sub\n</script:module>"
            ),
        }
    entries["content.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_NAMESPACES}'
        f' office:version="1.2">{scripts}<office:body><office:text>'
        f"<text:p>{escape(paragraph)}</text:p>{body_extra}</office:text></office:body>"
        "</office:document-content>"
    )
    manifest = "".join(
        f'<manifest:file-entry manifest:full-path="{name}" manifest:media-type="text/xml"/>'
        for name in entries
    )
    entries["META-INF/manifest.xml"] = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest'
        ' xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"'
        f' manifest:version="1.2"><manifest:file-entry manifest:full-path="/"'
        f' manifest:media-type="{ODT}"/>{manifest}</manifest:manifest>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), ODT)  # first and stored, as ODF says
        for name, text in entries.items():
            archive.writestr(name, text, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def linked_image(url: str) -> str:
    """ODF body markup drawing the image at ``url``, linked rather than embedded."""
    return (
        '<text:p><draw:frame draw:name="linked" svg:width="2cm" svg:height="2cm">'
        f'<draw:image xlink:href={quoteattr(url)} xlink:type="simple" xlink:show="embed"'
        ' xlink:actuate="onLoad"/></draw:frame></text:p>'
    )


def zip_bomb(unpacked_bytes: int) -> bytes:
    """A ``.docx``-shaped package whose one part inflates to ``unpacked_bytes`` of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<Types><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            chunk = bytes(1024 * 1024)
            for _ in range(unpacked_bytes // len(chunk)):
                part.write(chunk)
    return buffer.getvalue()


def long_docx(paragraphs: int) -> bytes:
    """A ``.docx`` of ``paragraphs`` lines: small to send (the lines compress to little) and
    slow to lay out (20,000 lines take LibreOffice about 10 s), where a test needs a
    conversion that outlasts its limit."""
    lines = "".join(
        f"<w:p><w:r><w:t>Line {n} of a document that goes on and on.</w:t></w:r></w:p>"
        for n in range(paragraphs)
    )
    source = zipfile.ZipFile(io.BytesIO(docx("Long", "first line")))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in source.infolist():
            data = source.read(entry.filename)
            if entry.filename == "word/document.xml":
                data = data.replace(b"<w:body>", b"<w:body>" + lines.encode(), 1)
            archive.writestr(entry, data)
    return buffer.getvalue()


def _saved(document: Document | Workbook | Presentation) -> bytes:  # type: ignore[valid-type]
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
