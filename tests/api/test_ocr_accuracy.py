"""Tesseract through the API recovers at least 95 % of the words of test-made documents."""

from __future__ import annotations

import io
import itertools
import random

import pytest
import requests
from PIL import ImageFilter

from tests.docs import (
    pdf_of_images,
    png_bytes,
    recovered,
    sentence_lines,
    text_image,
    two_column_image,
)


def ocr(server, key, name, payload, content_type) -> str:
    response = requests.post(
        f"{server.base}/api/v1/ocr/extract/simple",
        headers={"X-API-Key": key},
        files={"file": (name, payload, content_type)},
        timeout=180,
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["text"]


@pytest.mark.parametrize(
    ("font", "size"), [("sans", 28), ("serif", 36), ("mono", 24), ("sans", 48)]
)
def test_fonts_and_sizes(server, api_key, font, size) -> None:
    lines = sentence_lines(size, 8)
    text = ocr(server, api_key, "page.png", png_bytes(text_image(lines, font, size)), "image/png")
    assert recovered(lines, text) >= 0.95


def test_two_column_page(server, api_key) -> None:
    left, right = sentence_lines(1, 12, 4), sentence_lines(2, 12, 4)
    pdf = pdf_of_images([two_column_image(left, right)])
    text = ocr(server, api_key, "columns.pdf", pdf, "application/pdf")
    assert recovered(left + right, text) >= 0.95
    # Columns are read one after the other: a column's lines follow each other in the text,
    # instead of each left line being glued to the right line beside it.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for column in (left, right):
        pairs = list(itertools.pairwise(column))
        kept = sum(
            any(a == lines[i] and b == lines[i + 1] for i in range(len(lines) - 1))
            for a, b in pairs
        )
        assert kept >= len(pairs) * 0.8


def test_rotated_scan_like_image(server, api_key) -> None:
    lines = sentence_lines(9, 10)
    page = text_image(lines, "serif", 34)
    rng = random.Random(4)
    noisy = page.rotate(90, expand=True, fillcolor=255).rotate(1.5, expand=True, fillcolor=255)
    speckled = noisy.point(lambda v: v if rng.random() > 0.002 else 0)
    scan = speckled.filter(ImageFilter.GaussianBlur(0.6)).convert("L")
    out = io.BytesIO()
    scan.convert("RGB").save(out, "JPEG", quality=80)
    text = ocr(server, api_key, "scan.jpg", out.getvalue(), "image/jpeg")
    assert recovered(lines, text) >= 0.95
