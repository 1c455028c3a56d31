"""docTR on several one-page documents: read together in one process against one process per
document (as one runner pod per document) and against one warm process reading them one
after another; one run.

    .venv/bin/python bench/doctr_batch.py [--documents 8] [--device cpu] [--threads 0]

Each way runs in fresh processes (``execute`` / ``execute_batch``, the runner's own code, on
a local object store), so a process pays its import and model load as a pod does. A
process reports its start-up (imports and the model load) and its work (download, pages,
result, outcome) apart. The processes of *one per document* run one after the other, each
with the same threads, as pods queued on one device would. The weights are random stand-ins
(``tests.doctr_weights``), of docTR's smallest pair by default: the networks cost what
trained ones cost on a page, but what an untrained detector finds is noise (a few words with
this pair, tens of thousands with ``db_resnet50``), so recognition is not measured here.
Prints a Markdown table and the ratios, and writes them to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The repository root instead of bench/, whose operator.py would hide the standard library's.
ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=8)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="PyTorch CPU threads; 0: all")
    parser.add_argument("--page-batch-size", type=int, default=8)
    # The tests' pair: random db_resnet50 weights see ~60,000 "words" on a page, and reading
    # that many crops would swamp what this measures.
    parser.add_argument("--detection", default="db_mobilenet_v3_large")
    parser.add_argument("--recognition", default="crnn_mobilenet_v3_small")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.jobs.split(","))
        return
    with tempfile.TemporaryDirectory(prefix="doctr-batch-") as scratch:
        report(args, run_all(args, Path(scratch)))


def run_all(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from tests.doctr_weights import save_stand_in_weights

    weights = save_stand_in_weights(scratch / "weights", args.detection, args.recognition)
    env = {
        **os.environ,
        "DOCJOBS_DATA_DIR": str(scratch / "data"),
        "DOCJOBS_DOCTR__WEIGHTS_DIR": str(weights),
        "DOCJOBS_DOCTR__DETECTION_ARCH": args.detection,
        "DOCJOBS_DOCTR__RECOGNITION_ARCH": args.recognition,
        "DOCJOBS_DOCTR__DEVICE": args.device,
        "DOCJOBS_DOCTR__CPU_THREADS": str(args.threads),
        "DOCJOBS_DOCTR__PAGE_BATCH_SIZE": str(args.page_batch_size),
        "PYTHONPATH": str(ROOT),
    }
    jobs = put_documents(scratch / "data" / "objects", args.documents)
    runs: dict[str, list[dict[str, Any]]] = {}
    # Warm the file cache (PyTorch's libraries, the weights) so no way pays it alone.
    spawn(env, "sequential", jobs[:1])
    runs["batch"] = [spawn(env, "batch", jobs)]
    runs["per_document"] = [spawn(env, "sequential", [job]) for job in jobs]
    runs["sequential"] = [spawn(env, "sequential", jobs)]
    return {way: summed(processes, len(jobs)) for way, processes in runs.items()}


def put_documents(objects: Path, count: int) -> list[str]:
    from docjobs.storage.local import LocalStore
    from tests.docs import pdf_of_images, sentence_lines, text_image

    store = LocalStore(objects)
    jobs = []
    for number in range(count):
        job = f"job_{number + 1:024x}"
        page = text_image(sentence_lines(number, 25, 8), size=34, width=1700)
        store.put_bytes(f"bench/{job}/input", pdf_of_images([page]), "application/pdf")
        jobs.append(job)
    return jobs


def spawn(env: dict[str, str], way: str, jobs: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--child", way, "--jobs", ",".join(jobs)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {**measured, "wall_s": wall}


def summed(processes: list[dict[str, Any]], pages: int) -> dict[str, Any]:
    wall = sum(p["wall_s"] for p in processes)
    work = sum(p["work_s"] for p in processes)
    return {
        "processes": len(processes),
        "pages": pages,
        "wall_s": round(wall, 2),
        "startup_s": round(sum(p["startup_s"] for p in processes), 2),
        "work_s": round(work, 2),
        "cpu_s": round(sum(p["cpu_s"] for p in processes), 2),
        "pages_per_s": round(pages / wall, 3),
        "work_pages_per_s": round(pages / work, 3),
        "forward_passes": sum(p["forward_passes"] for p in processes),
    }


def child(way: str, jobs: list[str]) -> None:
    started = time.perf_counter()
    from docjobs.config import get_settings
    from docjobs.domain.models import InputRef, JobSpec, OcrAdvanced, WorkerRequest
    from docjobs.runner.batch import execute_batch
    from docjobs.runner.engines import doctr_ocr
    from docjobs.runner.execute import execute
    from docjobs.storage.local import LocalStore

    settings = get_settings()
    doctr_ocr.predictor_for(settings.doctr, settings.doctr.weights_directory(settings.data_dir))
    store = LocalStore(settings.data_dir / "objects")
    loaded = time.perf_counter()

    def request(job: str) -> WorkerRequest:
        key = f"bench/{job}/input"
        spec = JobSpec(
            job_id=job,
            tenant="bench",
            operation=OcrAdvanced(output="detailed"),
            input=InputRef(
                key=key,
                file_name="scan.pdf",
                content_type="application/pdf",
                sha256="0",
                size=store.path(key).stat().st_size,
            ),
            created_at=datetime.now(UTC),
        )
        return WorkerRequest(spec=spec, attempt=1)

    requests = [request(job) for job in jobs]
    if way == "batch":
        outcomes = execute_batch(requests, store)
        passes = max(o.summary.details.get("forward_passes", 0) for o in outcomes)
    else:
        outcomes = [execute(r.spec, r.attempt, store) for r in requests]
        passes = len(outcomes)  # a one-page document alone: one pass each
    failed = [o.summary.error for o in outcomes if o.exit_code != 0]
    assert not failed, failed
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "startup_s": loaded - started,
                "work_s": time.perf_counter() - loaded,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "forward_passes": passes,
            }
        )
    )


def report(args: argparse.Namespace, ways: dict[str, Any]) -> None:
    labels = {
        "batch": f"{args.documents} documents in one process, one batch",
        "per_document": f"{args.documents} processes, one document each",
        "sequential": f"{args.documents} documents one after another in one warm process",
    }
    print(
        f"docTR {args.detection} + {args.recognition} on {args.device}, {args.documents}"
        f" one-page documents (letter, 200 DPI), page batch {args.page_batch_size},"
        f" threads {args.threads or 'all'}; {platform.machine()}, {os.cpu_count()} CPUs\n"
    )
    print("| way | processes | passes | wall | start-up | work | CPU | pages/s | work pages/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for way, row in ways.items():
        print(
            f"| {labels[way]} | {row['processes']} | {row['forward_passes']} | {row['wall_s']} s"
            f" | {row['startup_s']} s | {row['work_s']} s | {row['cpu_s']} s"
            f" | {row['pages_per_s']} | {row['work_pages_per_s']} |"
        )
    batch = ways["batch"]
    ratios = {
        "batch_vs_per_document": round(
            batch["pages_per_s"] / ways["per_document"]["pages_per_s"], 2
        ),
        "batch_vs_sequential": round(batch["pages_per_s"] / ways["sequential"]["pages_per_s"], 2),
        "batch_vs_sequential_work": round(
            batch["work_pages_per_s"] / ways["sequential"]["work_pages_per_s"], 2
        ),
    }
    print(
        f"\npages/s, one batch / one process per document: {ratios['batch_vs_per_document']}x;"
        f" / one warm process one after another: {ratios['batch_vs_sequential']}x"
        f" (work alone: {ratios['batch_vs_sequential_work']}x)"
    )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = RESULTS / f"doctr-batch-{args.device}-{stamp}.json"
    body = {"settings": vars(args), "machine": platform.platform(), "ways": ways, "ratios": ratios}
    target.write_text(json.dumps(body, indent=2) + "\n")
    print(f"written to {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
