"""Documents made by the tests from known text, so results can be checked word by word."""

from __future__ import annotations

import io
import random
import struct
import zlib

from PIL import Image, ImageDraw, ImageFont

FONTS = {
    "sans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "serif": "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "mono": "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
}
WORDS = [
    "invoice",
    "payment",
    "customer",
    "delivery",
    "account",
    "balance",
    "quarterly",
    "report",
    "shipment",
    "warehouse",
    "contract",
    "signature",
    "amount",
    "received",
    "transfer",
    "schedule",
    "meeting",
    "office",
    "summary",
    "project",
    "budget",
    "revenue",
    "supplier",
    "address",
    "number",
    "total",
    "order",
    "letter",
]


def sentence_lines(seed: int, lines: int, words_per_line: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words_per_line)) for _ in range(lines)]


def text_image(
    lines: list[str], font: str = "sans", size: int = 36, width: int = 1700, margin: int = 100
) -> Image.Image:
    face = ImageFont.truetype(FONTS[font], size)
    height = margin * 2 + int(len(lines) * size * 1.6)
    image = Image.new("L", (width, max(height, 400)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((margin, margin + int(i * size * 1.6)), line, font=face, fill=0)
    return image


def two_column_image(left: list[str], right: list[str], size: int = 30) -> Image.Image:
    face = ImageFont.truetype(FONTS["serif"], size)
    image = Image.new("L", (2000, 200 + int(max(len(left), len(right)) * size * 1.6)), 255)
    draw = ImageDraw.Draw(image)
    for column, x in ((left, 100), (right, 1080)):
        for i, line in enumerate(column):
            draw.text((x, 100 + int(i * size * 1.6)), line, font=face, fill=0)
    return image


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def pdf_of_images(images: list[Image.Image]) -> bytes:
    out = io.BytesIO()
    first, *rest = [im.convert("RGB") for im in images]
    first.save(out, "PDF", resolution=200.0, save_all=True, append_images=rest)
    return out.getvalue()


def pdf_with_pages(pages: int, seed: int = 1) -> tuple[bytes, list[list[str]]]:
    """A PDF of ``pages`` scanned-looking pages and the text on each."""
    texts = [sentence_lines(seed + p, 4, 5) for p in range(pages)]
    return pdf_of_images([text_image(t, size=40, width=1200) for t in texts]), texts


def recovered(expected: list[str], text: str) -> float:
    """Share of expected words found, in order of appearance, in ``text`` (multiset)."""
    found = text.lower().split()
    pool: dict[str, int] = {}
    for w in found:
        pool[w] = pool.get(w, 0) + 1
    hits = 0
    words = [w.lower() for line in expected for w in line.split()]
    for w in words:
        if pool.get(w, 0) > 0:
            pool[w] -= 1
            hits += 1
    return hits / len(words)


INVOICE = {
    "number": "INV-2025-001",
    "date": "26/05/2025",
    "iso_date": "2025-05-26",
    "total": 1250.75,
    "vendor": "Acme Corporation",
}
INVOICE_TEMPLATE = {
    "name": "invoice",
    "engine": "rules",
    "fields": [
        {
            "name": "invoice.number",
            "type": "string",
            "description": "Invoice number",
            "labels": ["Invoice No", "Invoice Number"],
        },
        {"name": "invoice.date", "type": "date", "labels": ["Invoice Date", "Date"]},
        {"name": "invoice.total", "type": "currency", "labels": ["Total Due", "Total"]},
        {"name": "invoice.vendor", "type": "string", "labels": ["Vendor", "From"]},
    ],
}


def invoice_pdf(number: str = INVOICE["number"], total: str = "$1,250.75") -> bytes:
    """A one-page invoice with a text layer, rendered by WeasyPrint."""
    from weasyprint import HTML

    html = f"""<html><body style="font-family: DejaVu Sans; font-size: 12pt">
      <h1>Acme Corporation</h1>
      <p>Vendor: Acme Corporation<br>42 Industrial Way, Springfield</p>
      <p>Invoice No: {number}<br>Invoice Date: 26/05/2025</p>
      <p>Bill to: Globex Ltd</p>
      <table><tr><th>Item</th><th>Qty</th><th>Amount</th></tr>
        <tr><td>Widgets</td><td>10</td><td>$1,000.00</td></tr>
        <tr><td>Shipping</td><td>1</td><td>$250.75</td></tr></table>
      <p><b>Total Due: {total}</b></p></body></html>"""
    return HTML(string=html).write_pdf()


def rasterized(pdf: bytes, dpi: int = 200) -> bytes:
    """The PDF's first page as a PNG scan: no text layer, OCR needed."""
    import pypdfium2

    page = pypdfium2.PdfDocument(pdf)[0]
    image = page.render(scale=dpi / 72).to_pil().convert("L")
    return png_bytes(image)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: a bomb costs nothing to write."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def svg_use_bomb(levels: int = 11, fan: int = 10) -> str:
    """An SVG of nested <use>: each level draws the one below ``fan`` times (10^11 rects)."""
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
        ' width="100" height="100"><defs><rect id="l0" width="1" height="1"/>'
    ]
    for level in range(1, levels):
        uses = f'<use xlink:href="#l{level - 1}"/>' * fan
        parts.append(f'<g id="l{level}">{uses}</g>')
    parts.append(f'</defs><use xlink:href="#l{levels - 1}"/></svg>')
    return "".join(parts)
