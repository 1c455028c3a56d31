"""Peak memory of a runner reading a short and a long scan, side by side in one run.

    .venv/bin/python bench/memory.py [--pages 10 40] [--output simple detailed searchable_pdf]

For each page count, one generated scan (a PDF of page images rendered at 300 DPI, or a
multi-page TIFF with ``--input tiff``; 60 words a page) is
read by the Tesseract engine in a fresh process, as a runner worker reads a job
(``engines.run``). Prints that process's peak RSS (``ru_maxrss``; Tesseract itself runs in
child processes, one page at a time) and the ratio of the longest to the shortest scan.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.docs import pdf_of_images, sentence_lines, text_image

READ = """
import resource, sys
from pathlib import Path
from docjobs.domain.models import OcrSimple
from docjobs.runner import engines
output = engines.run(OcrSimple(output=sys.argv[2]), Path(sys.argv[1]), sys.argv[4])
assert output.page_count == int(sys.argv[3]), output.page_count
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kib(scan: Path, output: str, pages: int) -> int:
    content_type = "image/tiff" if scan.suffix == ".tiff" else "application/pdf"
    out = subprocess.run(
        [sys.executable, "-c", READ, str(scan), output, str(pages), content_type],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--output", nargs="+", default=["simple", "detailed", "searchable_pdf"])
    parser.add_argument("--input", choices=["pdf", "tiff"], default="pdf")
    args = parser.parse_args()
    counts = sorted(args.pages)
    with tempfile.TemporaryDirectory() as scratch:
        scans = {}
        for count in counts:
            # One page image, repeated: generating distinct 300 DPI pages costs more than
            # reading them and would say nothing more about memory.
            page = text_image(sentence_lines(500, 6, 10), size=36, width=1700)
            scans[count] = Path(scratch) / f"scan-{count}.{args.input}"
            if args.input == "pdf":
                scans[count].write_bytes(pdf_of_images([page] * count))
            else:
                page.save(scans[count], save_all=True, append_images=[page] * (count - 1))
        rows = [
            (output, [peak_rss_kib(scans[count], output, count) for count in counts])
            for output in args.output
        ]
    header = " | ".join(f"{count} pages" for count in counts)
    print(f"{args.input.upper()} scans\n")
    print(f"| output | {header} | {counts[-1]} / {counts[0]} pages |")
    print("|---|" + "---|" * (len(counts) + 1))
    for output, peaks in rows:
        cells = " | ".join(f"{peak / 1024:.0f} MiB" for peak in peaks)
        print(f"| {output} | {cells} | {peaks[-1] / peaks[0]:.2f}x |")


if __name__ == "__main__":
    main()
