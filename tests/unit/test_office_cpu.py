"""The CPU time of an Office conversion, as a usage record counts it, on real LibreOffice:
a LibreOffice kept running is no child the worker has waited for, so its time is counted
as documents go, and counted once when it is closed and waited for."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from docjobs.config import Settings
from docjobs.runner.cputime import cpu_time
from docjobs.runner.engines import office
from tests import office_docs


@pytest.fixture(autouse=True)
def worker_tmpdir(tmp_path: Path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(tmp_path))
        yield


def own_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def libreoffice_cpu() -> float:
    total = 0.0
    for process in psutil.Process().children(recursive=True):
        if process.name() == "soffice.bin":
            times = process.cpu_times()
            total += times.user + times.system
    return total


def convert(tmp_path: Path, name: str, data: bytes, settings: Settings) -> None:
    (tmp_path / name).mkdir()
    source = tmp_path / name / "in.docx"
    source.write_bytes(data)
    office.to_pdf(source, tmp_path / name, settings)


def test_a_warm_libreoffices_time_is_counted_once(tmp_path: Path) -> None:
    settings = Settings(office={"documents_per_process": 3}, ceilings={"max_convert_pages": 10_000})
    convert(tmp_path, "warm-up", office_docs.docx("Warm", "up"), settings)

    counted, own, spent = cpu_time(), own_cpu(), libreoffice_cpu()
    convert(tmp_path, "long", office_docs.long_docx(3000), settings)
    # Still running after this document, and never waited for by this process.
    spent = libreoffice_cpu() - spent
    assert spent > 0.2
    assert cpu_time() - counted - (own_cpu() - own) >= 0.9 * spent

    # The next document is its last: LibreOffice is closed and waited for, and what it
    # used is not counted again.
    counted, own, started = cpu_time(), own_cpu(), time.monotonic()
    convert(tmp_path, "last", office_docs.docx("Last", "one"), settings)
    assert libreoffice_cpu() == 0.0
    outside = cpu_time() - counted - (own_cpu() - own)
    assert 0 <= outside <= (time.monotonic() - started) * (os.cpu_count() or 1)
