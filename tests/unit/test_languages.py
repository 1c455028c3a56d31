"""Language hints as clients send them, read as Tesseract's language codes."""

from __future__ import annotations

import pytest

from docjobs import documents
from docjobs.documents import DocumentError
from docjobs.languages import UnsupportedLanguage, tesseract_languages

INSTALLED = frozenset({"eng", "fra", "deu", "chi_sim", "chi_tra", "srp", "srp_latn", "nor"})


@pytest.mark.parametrize(
    ("hint", "codes"),
    [
        ("en", "eng"),  # ISO 639-1
        ("eng", "eng"),  # ISO 639-2, Tesseract's own
        ("ger", "deu"),  # ISO 639-2/B
        ("english", "eng"),  # English name, any case
        ("French", "fra"),
        ("fr-FR", "fra"),  # BCP 47 with a region
        ("EN-us", "eng"),
        ("eng+fra", "eng+fra"),
        ("en + de", "eng+deu"),
        ("eng+english", "eng"),  # one language named twice is read once
        ("zh", "chi_sim"),  # Chinese: per script, by the bibliographic code
        ("zh-TW", "chi_tra"),
        ("Chinese Traditional", "chi_tra"),
        ("chi_sim", "chi_sim"),
        ("sr-Latn", "srp_latn"),  # an explicit script picks the script's model
        ("sr", "srp"),
        ("nb", "nor"),  # Tesseract's one Norwegian model
    ],
)
def test_client_hints_map_to_installed_codes(hint: str, codes: str) -> None:
    assert tesseract_languages(hint, INSTALLED) == codes


@pytest.mark.parametrize("hint", ["klingon", "tlh", "xx", "eng+", "", "osd", "ja"])
def test_what_maps_to_nothing_installed_is_refused_listing_what_is(hint: str) -> None:
    with pytest.raises(UnsupportedLanguage) as refused:
        tesseract_languages(hint, INSTALLED)
    assert "available: chi_sim, chi_tra, deu, eng, fra, nor, srp, srp_latn." in str(refused.value)


def test_without_a_local_tesseract_hints_become_tesseracts_names() -> None:
    """An API without Tesseract translates; the runner then checks against its own."""
    assert tesseract_languages("en+fr-FR", ()) == "eng+fra"
    assert tesseract_languages("zh-Hant", ()) == "chi_tra"
    assert tesseract_languages("jpn_vert", ()) == "jpn_vert"
    with pytest.raises(UnsupportedLanguage, match="'xx' names no language"):
        tesseract_languages("xx", ())


def test_the_api_check_uses_the_local_tesseract() -> None:
    """The machine's real Tesseract has eng, deu and fra (the image installs the same)."""
    assert documents.check_language("english+fr-FR") == "eng+fra"
    with pytest.raises(DocumentError) as refused:
        documents.check_language("ja")
    assert refused.value.code == "unsupported_language" and "deu, eng, fra" in str(refused.value)
