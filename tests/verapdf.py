"""veraPDF, the reference PDF/A and PDF/UA validator (``scripts/verapdf``), on PDFs the tests
made. Each file is checked against the standard its own metadata claims, and the verdict
names that standard, so a file claiming the wrong one fails its test too."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.timeouts import run_outside_test_timeout

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "verapdf"
INSTALL_TIMEOUT = 600


@dataclass(frozen=True)
class Verdict:
    passed: bool
    flavour: str
    """The profile veraPDF checked against: '2b', '3b', 'ua1'... ('1b' for a PDF claiming
    none)."""
    failed_rules: tuple[str, ...] = ()


def install_outside_test_timeout() -> None:
    """Fetches veraPDF on first use. The download may outlast the per-test pytest-timeout,
    so its (signal-method) alarm is paused for it and re-armed with what was left."""
    if shutil.which("java") is None:
        pytest.fail("veraPDF needs Java (and Maven to fetch it): run scripts/setup", pytrace=False)
    run_outside_test_timeout(
        [str(SCRIPT), "--install"], INSTALL_TIMEOUT, "scripts/verapdf --install"
    )


def validate(*pdfs: Path) -> dict[Path, Verdict]:
    """veraPDF's verdict on each file, in one run of the validator."""
    done = subprocess.run(
        [str(SCRIPT), "--format", "text", "--verbose", *map(str, pdfs)],
        text=True,
        capture_output=True,
        timeout=120,
    )
    verdicts: dict[Path, Verdict] = {}
    current: tuple[Path, bool, str] | None = None
    rules: list[str] = []
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] in ("PASS", "FAIL") and not line.startswith(" "):
            if current is not None:
                verdicts[current[0]] = Verdict(current[1], current[2], tuple(rules))
            current, rules = (Path(fields[1]), fields[0] == "PASS", fields[2]), []
        elif len(fields) == 2 and fields[0] == "FAIL":
            rules.append(fields[1])
    if current is not None:
        verdicts[current[0]] = Verdict(current[1], current[2], tuple(rules))
    assert set(verdicts) == {pdf.resolve() for pdf in pdfs}, done.stdout + done.stderr
    return verdicts
