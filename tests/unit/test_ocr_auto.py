"""The ``auto`` tier's docTR rung: the runner engine on real Tesseract and docTR with
stand-in weights (``tests.doctr_weights``: random, so they read little and with little
confidence), no Claude configured.

docTR needs the ``doctr`` extra (``scripts/setup`` installs it); without it these are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import ImageFilter

from docjobs.config import get_settings
from docjobs.domain.models import OcrAuto
from docjobs.runner import engines
from tests.docs import pdf_of_images, sentence_lines, text_image
from tests.doctr_weights import DETECTION_ARCH, RECOGNITION_ARCH, save_stand_in_weights

pytest.importorskip("doctr", reason="the doctr extra is not installed")


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_stand_in_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    """Two pages: clean print, then the same print blurred past Tesseract's reach."""
    clean = text_image(sentence_lines(5, 3, 5), size=40, width=1200)
    blurred = text_image(sentence_lines(6, 3, 5), size=40, width=1200)
    path = tmp_path / "scan.pdf"
    path.write_bytes(pdf_of_images([clean, blurred.filter(ImageFilter.GaussianBlur(5))]))
    return path


@pytest.fixture
def settings_of(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DOCJOBS_DOCTR__DETECTION_ARCH", DETECTION_ARCH)
    monkeypatch.setenv("DOCJOBS_DOCTR__RECOGNITION_ARCH", RECOGNITION_ARCH)
    monkeypatch.setenv("DOCJOBS_DOCTR__DEVICE", "cpu")
    monkeypatch.setenv("DOCJOBS_LLM__API_KEY", "")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def read(scan: Path, workdir: Path, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    output = engines.run(OcrAuto(**params), scan, "application/pdf", workdir=workdir)
    return json.loads(output.path.read_text())["data"]["pages"], output.details


@pytest.mark.usefixtures("settings_of")
def test_a_weak_page_is_read_by_doctr_and_the_best_reading_kept(
    scan: Path, weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCJOBS_DOCTR__WEIGHTS_DIR", str(weights_dir))
    get_settings.cache_clear()

    pages, details = read(scan, tmp_path, output="detailed")

    clean, weak = pages
    assert clean["tier"] == "tesseract" and clean["reason"].startswith("confidence ")
    steps = weak["reason"].split("; ")
    assert steps[0].startswith("tesseract ") and steps[0].endswith(" < 75")
    assert steps[1].startswith("doctr ") and steps[1].endswith(" < 75")
    assert steps[2] == "vision not configured (no Claude API key)"
    # Of the two weak readings, the one kept is the more confident one.
    tesseract, doctr = (float(step.split()[1]) for step in steps[:2])
    assert weak["tier"] == ("doctr" if doctr > tesseract else "tesseract")
    assert weak["confidence"] == max(tesseract, doctr)
    assert details["pages_by_tier"][weak["tier"]] >= 1
    assert sum(details["pages_by_tier"].values()) == 2


@pytest.mark.usefixtures("settings_of")
def test_unreadable_weights_leave_the_page_to_tesseract_and_say_why(
    scan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (tmp_path / "out").mkdir()
    for arch in (DETECTION_ARCH, RECOGNITION_ARCH):
        (broken / f"{arch}.pt").write_bytes(b"not a state dict")
    monkeypatch.setenv("DOCJOBS_DOCTR__WEIGHTS_DIR", str(broken))
    get_settings.cache_clear()

    pages, details = read(scan, tmp_path / "out", confidence_threshold=80)

    weak = pages[1]
    assert weak["tier"] == "tesseract"
    assert "< 80; doctr not available (" in weak["reason"]
    assert "does not hold" in weak["reason"]
    assert details["pages_by_tier"] == {"tesseract": 2, "doctr": 0, "vision": 0}
