"""``scripts/setup``: ``make serve``'s lean virtualenv has no PyTorch, and a later call that
asks for more extras (as ``make test`` does) adds them, remembered in the stamp."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def setup(venv: Path, extras: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VENV": str(venv), "EXTRAS": extras}
    return subprocess.run(
        [str(ROOT / "scripts" / "setup")], env=env, capture_output=True, text=True, timeout=900
    )


def importable(venv: Path, module: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([str(venv / "bin" / "python"), "-c", probe]).returncode == 0


def test_the_lean_install_has_no_torch_and_a_later_call_adds_extras(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    lean = setup(venv, "")
    assert lean.returncode == 0, lean.stderr
    assert importable(venv, "docjobs") and importable(venv, "pytesseract")
    assert not importable(venv, "torch") and not importable(venv, "doctr")
    assert not importable(venv, "pytest")
    stamp = venv / ".docjobs-installed"
    assert stamp.read_text() == ""

    more = setup(venv, "dev")
    assert more.returncode == 0, more.stderr
    assert importable(venv, "pytest")
    assert stamp.read_text() == "dev"

    # Asking for less keeps what is there and installs nothing.
    before = stamp.stat().st_mtime_ns
    again = setup(venv, "")
    assert again.returncode == 0, again.stderr
    assert stamp.read_text() == "dev" and stamp.stat().st_mtime_ns == before
