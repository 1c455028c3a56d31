"""``docjobs models fetch`` without arguments: docTR's default pair from its published URLs,
each kept only if its SHA-256 starts with the digits its release name carries.

The real URLs cannot be reached from the tests: a local server stands in for them (as a
mirror, ``--base-url``), serving stand-in files whose release names carry their own digits.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docjobs.capabilities import find_weights
from docjobs.cli import app
from docjobs.config import DoctrSettings, get_settings
from docjobs.runner import weights

DEFAULT_PAIR = (DoctrSettings().detection_arch, DoctrSettings().recognition_arch)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A local HTTP server publishing ``served/``, and the paths it was asked for."""
    served = tmp_path / "served"
    served.mkdir()
    asked: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(served))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served, asked
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def default_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("DETECTION_ARCH", "RECOGNITION_ARCH", "WEIGHTS_DIR"):
        monkeypatch.delenv(f"DOCJOBS_DOCTR__{name}", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def publish_stand_ins(
    monkeypatch: pytest.MonkeyPatch, served: Path, tamper: str | None = None
) -> dict[str, bytes]:
    """Stand-in files for the default pair, published under release names that carry their
    own SHA-256 digits, as docTR's do; ``tamper``: that architecture's served file is then
    replaced by other bytes."""
    contents = {}
    for arch in DEFAULT_PAIR:
        data = f"stand-in weights of {arch}".encode()
        digits = hashlib.sha256(data).hexdigest()[:8]
        release = f"{arch}-{digits}.pt"
        url = f"https://doctr-static.mindee.com/models?id=v9.9.9/{release}&src=0"
        monkeypatch.setitem(weights.PUBLISHED, arch, weights.PublishedWeights(arch, url))
        (served / release).write_bytes(b"tampered" if arch == tamper else data)
        contents[arch] = data
    return contents


def test_no_arguments_fetch_and_verify_the_default_pair(
    mirror: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base, served, asked = mirror
    contents = publish_stand_ins(monkeypatch, served)
    target = tmp_path / "models"

    run = CliRunner().invoke(app, ["models", "fetch", "--base-url", base, "--dir", str(target)])

    assert run.exit_code == 0, run.output
    assert sorted(asked) == sorted(f"/{weights.PUBLISHED[a].file_name}" for a in DEFAULT_PAIR)
    for arch in DEFAULT_PAIR:
        found = find_weights(target, arch)
        assert found is not None, arch
        assert found.read_bytes() == contents[arch]
        assert str(found) in run.output
    # Again: the files already there are checked, not downloaded a second time.
    again = CliRunner().invoke(app, ["models", "fetch", "--base-url", base, "--dir", str(target)])
    assert again.exit_code == 0, again.output
    assert len(asked) == 2


def test_a_file_that_does_not_match_its_release_digits_is_not_kept(
    mirror: tuple[str, Path, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base, served, _ = mirror
    publish_stand_ins(monkeypatch, served, tamper=DEFAULT_PAIR[1])
    target = tmp_path / "models"

    run = CliRunner().invoke(app, ["models", "fetch", "--base-url", base, "--dir", str(target)])

    assert run.exit_code == 1
    assert "checksum mismatch" in run.output
    assert find_weights(target, DEFAULT_PAIR[1]) is None
    assert [p.name for p in target.iterdir()] == [weights.PUBLISHED[DEFAULT_PAIR[0]].local_name]


def test_sha256_alone_is_refused(tmp_path: Path) -> None:
    run = CliRunner().invoke(app, ["models", "fetch", "--sha256", "0" * 64, "--dir", str(tmp_path)])
    assert run.exit_code == 2
    assert "--url" in run.output


def test_an_architecture_without_published_weights_names_the_mirror_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCJOBS_DOCTR__DETECTION_ARCH", "linknet_resnet18")
    get_settings.cache_clear()
    run = CliRunner().invoke(app, ["models", "fetch", "--dir", str(tmp_path)])
    assert run.exit_code == 2
    assert "linknet_resnet18" in run.output and "--url URL --sha256 HASH" in run.output


def test_the_pins_are_the_urls_docTR_itself_publishes() -> None:
    pytest.importorskip("doctr", reason="the doctr extra is not installed")
    from doctr.models.detection.differentiable_binarization.pytorch import (
        default_cfgs as detection_cfgs,
    )
    from doctr.models.recognition.crnn.pytorch import default_cfgs as recognition_cfgs

    published = {**detection_cfgs, **recognition_cfgs}
    assert set(DEFAULT_PAIR) <= set(weights.PUBLISHED)
    for arch, pinned in weights.PUBLISHED.items():
        assert pinned.url == published[arch]["url"], arch
        assert len(pinned.sha256_prefix) == 8
        assert pinned.local_name.startswith(f"{arch}-")
