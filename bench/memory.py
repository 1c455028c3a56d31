"""Peak memory of a runner reading a short and a long scan, side by side in one run.

    .venv/bin/python bench/memory.py [--pages 5 500] [--output simple detailed searchable_pdf]

For each page count, one generated scan (a PDF of small page images, 3 x 2 inches at
200 DPI with 30 words each, or a multi-page TIFF of them with ``--input tiff``) is read as a
runner reads one attempt (``execute``: fetch the input from a local object store, run the
Tesseract engine, store the result), each in a fresh process. Prints that process's peak RSS
(``VmHWM``; Tesseract itself runs in child processes, one page at a time), the result's
size and the ratio of the longest to the shortest scan.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.docs import pdf_of_images, sentence_lines, text_image

ATTEMPT = """
import re, sys
from datetime import UTC, datetime
from pathlib import Path
from docjobs.domain.models import EXIT_OK, InputRef, JobSpec, OcrSimple
from docjobs.runner.execute import execute
from docjobs.storage.local import LocalStore

scan, output, pages, content_type, root = sys.argv[1:6]
store = LocalStore(Path(root))
size = store.put_file("bench/job/input", Path(scan), content_type)
source = InputRef(
    key="bench/job/input", file_name=Path(scan).name, content_type=content_type,
    sha256="0" * 64, size=size,
)
spec = JobSpec(
    job_id="job", tenant="bench", operation=OcrSimple(output=output), input=source,
    created_at=datetime.now(UTC),
)
outcome = execute(spec, 1, store)
assert outcome.exit_code == EXIT_OK, outcome
assert outcome.summary.page_count == int(pages), outcome
assert outcome.summary.result is not None
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (the bench,
# holding the generated scans) through exec; VmHWM is this process's own peak.
peak = re.search(r"^VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text(), re.M)
print(peak[1], outcome.summary.result.size)
"""


def peak_rss_kib(scan: Path, output: str, pages: int, scratch: Path) -> tuple[int, int]:
    """The attempt's peak RSS in KiB, and the size of its result in bytes."""
    content_type = "image/tiff" if scan.suffix == ".tiff" else "application/pdf"
    root = scratch / f"store-{pages}-{output}"
    out = subprocess.run(
        [sys.executable, "-c", ATTEMPT, str(scan), output, str(pages), content_type, str(root)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    peak, size = out.split()[-2:]
    return int(peak), int(size)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, nargs="+", default=[5, 500])
    parser.add_argument("--output", nargs="+", default=["simple", "detailed", "searchable_pdf"])
    parser.add_argument("--input", choices=["pdf", "tiff"], default="pdf")
    args = parser.parse_args()
    counts = sorted(args.pages)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        scans = {}
        for count in counts:
            # One small page image, repeated: distinct pages would cost more to generate
            # than to read and say nothing more about memory.
            page = text_image(sentence_lines(500, 3, 10), size=20, width=600, margin=30)
            scans[count] = scratch / f"scan-{count}.{args.input}"
            if args.input == "pdf":
                scans[count].write_bytes(pdf_of_images([page] * count))
            else:
                page.save(
                    scans[count],
                    save_all=True,
                    append_images=[page] * (count - 1),
                    dpi=(200, 200),
                    compression="group4" if page.mode == "1" else "tiff_deflate",
                )
        rows = [
            (output, [peak_rss_kib(scans[count], output, count, scratch) for count in counts])
            for output in args.output
        ]
    header = " | ".join(f"{count} pages" for count in counts)
    print(f"{args.input.upper()} scans; peak RSS (result size)\n")
    print(f"| output | {header} | {counts[-1]} / {counts[0]} pages |")
    print("|---|" + "---|" * (len(counts) + 1))
    for output, measured in rows:
        cells = " | ".join(
            f"{peak / 1024:.0f} MiB ({size / 1024:.0f} KiB)" for peak, size in measured
        )
        print(f"| {output} | {cells} | {measured[-1][0] / measured[0][0]:.2f}x |")


if __name__ == "__main__":
    main()
