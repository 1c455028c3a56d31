"""The docTR engine with stand-in weights, and ``docjobs models fetch`` against a local server.

docTR needs the ``doctr`` extra (``scripts/setup`` installs it); without it these are skipped.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from docjobs.config import DoctrSettings
from docjobs.domain.models import Extract, OcrAdvanced
from docjobs.runner import engines
from docjobs.runner.engines import PermanentError
from docjobs.templates.schema import TemplateField, TemplateSpec
from tests.docs import pdf_with_pages
from tests.doctr_weights import DETECTION_ARCH, RECOGNITION_ARCH, save_stand_in_weights

pytest.importorskip("doctr", reason="the doctr extra is not installed")
from docjobs.runner.engines import doctr_ocr

DOCJOBS = Path(sys.executable).parent / "docjobs"


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_stand_in_weights(tmp_path_factory.mktemp("weights"))


def config(**overrides: object) -> DoctrSettings:
    given: dict[str, object] = {
        "detection_arch": DETECTION_ARCH,
        "recognition_arch": RECOGNITION_ARCH,
        "device": "cpu",
    }
    return DoctrSettings.model_validate({**given, **overrides})


def test_the_predictor_is_built_once_and_reused(weights_dir: Path) -> None:
    first = doctr_ocr.predictor_for(config(), weights_dir)
    assert doctr_ocr.predictor_for(config(), weights_dir) is first
    assert next(first.parameters()).device.type == "cpu"


def test_missing_weights_name_the_setting_and_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as failure:
        doctr_ocr.predictor_for(config(), tmp_path / "empty")
    assert failure.value.reason == "ModelWeightsMissing"
    assert "DOCJOBS_DOCTR__WEIGHTS_DIR" in failure.value.message
    assert "docjobs models fetch" in failure.value.message
    assert DETECTION_ARCH in failure.value.message


def test_weights_of_another_architecture_are_refused(weights_dir: Path, tmp_path: Path) -> None:
    # The recognition file renamed as the detection one: the tensors do not fit.
    (tmp_path / f"{DETECTION_ARCH}.pt").write_bytes(
        (weights_dir / f"{RECOGNITION_ARCH}.pt").read_bytes()
    )
    (tmp_path / f"{RECOGNITION_ARCH}.pt").write_bytes(
        (weights_dir / f"{RECOGNITION_ARCH}.pt").read_bytes()
    )
    with pytest.raises(PermanentError) as failure:
        doctr_ocr.predictor_for(config(), tmp_path)
    assert failure.value.reason == "ModelWeightsInvalid"


def test_an_unknown_architecture_names_its_setting(weights_dir: Path) -> None:
    with pytest.raises(PermanentError) as failure:
        doctr_ocr.predictor_for(config(detection_arch="db_tiny_unknown"), weights_dir)
    assert "DOCJOBS_DOCTR__DETECTION_ARCH" in failure.value.message


def test_pages_come_back_in_order_with_their_sizes(
    weights_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docjobs.config import get_settings

    for name, value in {
        "DOCJOBS_DOCTR__WEIGHTS_DIR": str(weights_dir),
        "DOCJOBS_DOCTR__DETECTION_ARCH": DETECTION_ARCH,
        "DOCJOBS_DOCTR__RECOGNITION_ARCH": RECOGNITION_ARCH,
        "DOCJOBS_DOCTR__PAGE_BATCH_SIZE": "2",  # three pages: a full batch and a short one
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    source = tmp_path / "scan.pdf"
    source.write_bytes(pdf_with_pages(3)[0])
    try:
        output = doctr_ocr.extract(
            OcrAdvanced(output="detailed"), source, "application/pdf", tmp_path
        )
    finally:
        get_settings.cache_clear()
    pages = json.loads(output.path.read_bytes())["data"]["pages"]
    assert [page["page"] for page in pages] == [1, 2, 3]
    assert output.page_count == 3
    for page in pages:
        # 1200 px at 200 DPI rendered at 300 DPI (PDFium rounds up).
        assert page["width"] in (1800, 1801)
        for word in page["words"]:
            box = word["bbox"]
            assert 0 <= box["x"] <= box["x"] + box["width"] <= page["width"]
            assert 0 <= box["y"] <= box["y"] + box["height"] <= page["height"]
            assert 0 <= word["confidence"] <= 100


def test_a_parse_job_reading_scans_with_doctr_fails_without_weights_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from docjobs.config import get_settings

    monkeypatch.setenv("DOCJOBS_DOCTR__WEIGHTS_DIR", str(tmp_path / "empty"))
    get_settings.cache_clear()
    source = tmp_path / "scan.pdf"
    source.write_bytes(pdf_with_pages(1)[0])
    template = TemplateSpec(name="invoice", fields=[TemplateField(name="invoice.number")])
    operation = Extract(template_id="tpl-1", template=template, ocr="advanced")
    try:
        with pytest.raises(PermanentError) as failure:
            engines.run(operation, source, "application/pdf", workdir=tmp_path)
    finally:
        get_settings.cache_clear()
    assert failure.value.reason == "ModelWeightsMissing"
    assert "DOCJOBS_DOCTR__WEIGHTS_DIR" in failure.value.message


# docjobs models fetch


@pytest.fixture
def weights_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server publishing ``served/`` (a mirror of weight files)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()


def fetch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DOCJOBS), "models", "fetch", *args], capture_output=True, text=True, timeout=60
    )


def test_models_fetch_keeps_a_file_with_the_right_checksum(
    weights_server: tuple[str, Path], weights_dir: Path, tmp_path: Path
) -> None:
    url, served = weights_server
    data = (weights_dir / f"{RECOGNITION_ARCH}.pt").read_bytes()
    (served / f"{RECOGNITION_ARCH}-0123abcd.pt").write_bytes(data)
    target = tmp_path / "models"

    run = fetch(
        "--url", f"{url}/{RECOGNITION_ARCH}-0123abcd.pt",
        "--sha256", hashlib.sha256(data).hexdigest(),
        "--dir", str(target),
    )  # fmt: skip

    assert run.returncode == 0, run.stderr
    assert (target / f"{RECOGNITION_ARCH}-0123abcd.pt").read_bytes() == data
    assert sorted(p.name for p in target.iterdir()) == [f"{RECOGNITION_ARCH}-0123abcd.pt"]
    # docTR's release names are found by architecture.
    assert (
        doctr_ocr.weights.find(target, RECOGNITION_ARCH)
        == target / f"{RECOGNITION_ARCH}-0123abcd.pt"
    )


def test_models_fetch_refuses_a_wrong_checksum_and_leaves_nothing(
    weights_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, served = weights_server
    (served / "tampered.pt").write_bytes(b"not the weights that were published")
    target = tmp_path / "models"

    run = fetch(
        "--url", f"{url}/tampered.pt", "--sha256", "0" * 64,
        "--name", f"{DETECTION_ARCH}.pt", "--dir", str(target),
    )  # fmt: skip

    assert run.returncode == 1
    assert "checksum mismatch" in run.stderr
    assert list(target.iterdir()) == []


def test_models_fetch_reports_a_missing_file(
    weights_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = weights_server
    run = fetch("--url", f"{url}/absent.pt", "--sha256", "0" * 64, "--dir", str(tmp_path))
    assert run.returncode == 1
    assert "HTTP 404" in run.stderr
