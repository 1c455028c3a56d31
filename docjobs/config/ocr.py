"""The ``ocr`` section: how the OCR tiers share the work of one document."""

from __future__ import annotations

from pydantic import BaseModel, Field


class OcrSettings(BaseModel):
    """Settings of the ``auto`` tier (``DOCJOBS_OCR__*``)."""

    auto_threshold: float = Field(default=75.0, ge=0, le=100)
    """Confidence, 0-100; 75. A page Tesseract reads with a confidence under this (or with no
    word at all) is read again by docTR where this installation has it, then by Claude vision
    where a key is configured, and the best reading is kept; pages at or above it stay
    Tesseract's. Clean print reads at 90 and more, a blurred or noisy scan well under 60. A
    request's ``confidence_threshold`` replaces it for that request."""
