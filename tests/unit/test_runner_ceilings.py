"""Ceilings the runner enforces itself: CPU time per attempt, and what searchable PDFs keep."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from docjobs.runner.engines import searchable_pdf

SPIN = """
import time
from docjobs.runner import limits
limits.enforce_ceilings()

def spin():
    end = time.process_time() + 30
    while time.process_time() < end:
        pass

for attempt in (1, 2):  # a warm worker: each attempt gets the whole ceiling again
    cpu_started = time.process_time()
    try:
        limits.within_ceilings(spin)
    except limits.CpuCeilingExceeded as exc:
        print(attempt, exc.reason, round(time.process_time() - cpu_started), exc.message)
print(limits.within_ceilings(lambda: "honest"))
"""


def test_an_attempt_past_its_cpu_ceiling_fails_naming_it_and_the_next_runs() -> None:
    env = {**os.environ, "DOCJOBS_CEILINGS__ATTEMPT_CPU_SECONDS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SPIN], env=env, capture_output=True, text=True, timeout=60
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stderr
    assert [line.split()[:2] for line in lines[:2]] == [
        ["1", "CpuCeilingExceeded"],
        ["2", "CpuCeilingExceeded"],
    ]
    # CPU seconds, not wall time: a loaded machine stretches the wall clock, and the point is
    # that the attempt stopped far short of the 30 CPU seconds it asked for.
    assert all(int(line.split()[2]) < 10 for line in lines[:2]), lines
    assert "DOCJOBS_CEILINGS__ATTEMPT_CPU_SECONDS" in lines[0]
    assert lines[2] == "honest"


def pdf_that_runs_code() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    script = DictionaryObject(
        {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject("1")}
    )
    scripts = DictionaryObject(
        {NameObject("/Names"): ArrayObject([TextStringObject("on-load"), script])}
    )
    writer.root_object[NameObject("/Names")] = DictionaryObject(
        {NameObject("/JavaScript"): writer._add_object(scripts)}
    )
    launch = DictionaryObject(
        {NameObject("/S"): NameObject("/Launch"), NameObject("/F"): TextStringObject("calc")}
    )
    writer.root_object[NameObject("/OpenAction")] = writer._add_object(script)
    writer.root_object[NameObject("/AA")] = DictionaryObject({NameObject("/WC"): script})
    page = writer.pages[0]
    page[NameObject("/AA")] = DictionaryObject({NameObject("/O"): script})
    link = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([NumberObject(v) for v in (0, 0, 50, 50)]),
            NameObject("/A"): launch,
        }
    )
    page[NameObject("/Annots")] = ArrayObject([writer._add_object(link)])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_searchable_pdfs_leave_out_what_the_input_would_run(tmp_path: Path) -> None:
    source = tmp_path / "input.pdf"
    source.write_bytes(pdf_that_runs_code())
    word = {
        "text": "hello",
        "confidence": 90,
        "bbox": {"x": 10, "y": 10, "width": 50, "height": 12},
    }
    read = {"page": 1, "width": 200, "height": 200, "words": [word]}
    for page_of, layered in ((lambda n: read, True), (lambda n: None, False)):
        target = tmp_path / f"result-{layered}.pdf"
        searchable_pdf.build(source, "application/pdf", page_of, target)
        result = PdfReader(target)
        root = result.trailer["/Root"]
        assert "/OpenAction" not in root and "/AA" not in root
        assert "/JavaScript" not in root.get("/Names", {})
        page = result.pages[0]
        assert "/AA" not in page
        annotations = [a.get_object() for a in page.get("/Annots", [])]
        assert annotations and all("/A" not in a for a in annotations)
        assert ("hello" in page.extract_text()) is layered
