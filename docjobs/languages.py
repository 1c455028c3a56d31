"""Language hints as clients send them (``en``, ``english``, ``fr-FR``, ``eng+fra``) as
Tesseract's language codes.

Tesseract names its models by ISO 639-2/T code (``eng``, ``fra``, ``deu``), a few with a
script suffix (``srp_latn``, ``aze_cyrl``), and Chinese by the bibliographic code and a
script word (``chi_sim``, ``chi_tra``). A hint is read as an installed code first, then as a
BCP 47 tag or ISO 639 code, then as an English language name; ``+`` joins several.
"""

from __future__ import annotations

import functools
import logging
import subprocess
from collections.abc import Collection

import langcodes

log = logging.getLogger(__name__)

_SCRIPT_WORDS = {"Hans": "sim", "Hant": "tra"}
"""Tesseract's suffix for a script where it is not the lower-case ISO 15924 code."""
_NORWEGIAN = {"nob": "nor", "nno": "nor"}
"""Tesseract has one model for Norwegian, under the macrolanguage's code."""
_SCRIPT_ONLY_MODELS = frozenset({"zho"})
"""Languages Tesseract has models for only per script (Chinese: simplified, traditional)."""


class UnsupportedLanguage(ValueError):
    """Some part of a hint names no language, or none that Tesseract has installed."""

    def __init__(self, unknown: list[str], installed: Collection[str]) -> None:
        names = ", ".join(repr(name) for name in unknown) or "''"
        if installed:
            message = (
                f"No installed OCR language matches {names}; "
                f"available: {', '.join(sorted(installed))}."
            )
        else:
            message = f"{names} names no language known to ISO 639 or BCP 47."
        super().__init__(message)
        self.unknown = unknown


@functools.cache
def installed_tesseract_languages() -> frozenset[str]:
    """Recognition languages of the local Tesseract; empty when Tesseract is not installed.

    ``osd`` is left out: it detects orientation and script and recognises no text.
    """
    try:
        listing = subprocess.run(
            ["tesseract", "--list-langs"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("cannot list Tesseract languages: %s", exc)
        return frozenset()
    # The first line is a header ("List of available languages in ... (3):").
    names = {line.strip() for line in listing.splitlines()[1:]}
    return frozenset(name for name in names if name and name != "osd")


def tesseract_languages(hint: str, installed: Collection[str]) -> str:
    """``hint`` as Tesseract's ``lang`` argument, e.g. ``eng+fra`` for ``en+fr-FR``.

    Each part maps to an ``installed`` model. With nothing installed to compare against
    (an API without Tesseract) each part maps to the code Tesseract would use, and the
    runner checks it. Raises :class:`UnsupportedLanguage` naming every part that fails.
    """
    codes: list[str] = []
    unknown: list[str] = []
    for part in (p.strip() for p in hint.split("+")):
        code = _tesseract_code(part, installed)
        if code is None:
            unknown.append(part)
        else:
            codes.append(code)
    if unknown or not codes:
        raise UnsupportedLanguage(unknown, installed)
    return "+".join(dict.fromkeys(codes))


def _tesseract_code(part: str, installed: Collection[str]) -> str | None:
    if not part:
        return None
    for name in (part, part.lower()):
        if name in installed:
            return name
    if not installed and "_" in part:
        return part.lower()  # already in Tesseract's form, such as ``chi_tra``
    language = _language(part)
    if language is None:
        return None
    candidates = _candidates(language)
    if not installed:
        return candidates[0]
    return next((code for code in candidates if code in installed), None)


def _language(part: str) -> langcodes.Language | None:
    """The language a tag, an ISO 639 code or an English name denotes; None if none."""
    try:
        language = langcodes.Language.get(part)
        if language.language and language.is_valid():
            return language
    except ValueError:  # LanguageTagError included
        pass
    try:
        return langcodes.find(part)
    except LookupError:
        return None


def _candidates(language: langcodes.Language) -> list[str]:
    """Tesseract codes for ``language``, most specific first."""
    try:
        terminology = language.to_alpha3()
        bibliographic = language.to_alpha3(variant="B")
    except LookupError:
        return []
    codes = [
        c for c in dict.fromkeys((_NORWEGIAN.get(terminology), terminology, bibliographic)) if c
    ]
    script = language.script or language.maximize().script
    scripted: list[str] = []
    if script and (language.script or terminology in _SCRIPT_ONLY_MODELS):
        word = _SCRIPT_WORDS.get(script, script.lower())
        scripted = [f"{code}_{word}" for code in codes]
    if terminology in _SCRIPT_ONLY_MODELS:
        # Chinese is named by its bibliographic code: ``chi_sim``, never ``zho_sim``.
        scripted.sort(key=lambda code: not code.startswith(bibliographic))
        return scripted
    return scripted + codes
