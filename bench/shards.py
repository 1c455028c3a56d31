"""A long scan on the rig: one Indexed Job of page shards against one pod.

    .venv/bin/python bench/shards.py [--pages 100] [--shard-pages 25] [--parallelism 4]

Uses the running rig (``DOCJOBS_RIG_STATE`` says which; started and stopped here if it is not
up). Starts one ``docjobs operator`` on a fresh namespace (shards above 40 pages, of
``--shard-pages`` pages, ``--parallelism`` at once) and submits the same generated scan twice,
one after the other: without a page count the operator cannot plan shards, so one pod reads
every page; with it, the scan runs as an Indexed Job of shards and a merge pod. Times each
from DocumentJob creation to Complete, counts the pods each used, checks that both results
hold the same pages and text, and prints a Markdown table with the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.operator import machine, prepare, serving, start_operator  # noqa: E402
from docjobs.storage.s3 import S3Store  # noqa: E402
from tests.docs import pdf_with_pages  # noqa: E402
from tests.operator.conftest import Jobs  # noqa: E402
from tests.rig.fixtures import _read_env, _state_dir, local_cluster, wait_for  # noqa: E402

OPERATION = {"kind": "ocr.simple", "output": "detailed"}


def run_once(jobs: Jobs, store: S3Store, pdf: bytes, pages: int | None) -> dict[str, Any]:
    """One DocumentJob of ``pdf``; ``pages`` given lets the operator plan shards."""
    resource = jobs.prepare(OPERATION, pdf, "application/pdf", "scan.pdf")
    if pages is not None:
        resource["spec"]["input"]["pageCount"] = pages
    name = str(resource["metadata"]["name"])
    load_before = os.getloadavg()[0]
    start = time.monotonic()
    jobs.api.create(jobs.path(), resource)
    status = jobs.wait(name, timeout=3600)
    wall = time.monotonic() - start
    assert status["phase"] == "Complete", status
    result = json.loads(b"".join(store.iter_chunks(status["result"]["key"])))
    return {
        "wall_seconds": round(wall, 1),
        "pods": len(jobs.pods(name)),
        "runner_jobs": len(jobs.runner_jobs(name)),
        "load_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "pages": [(page["page"], page["text"]) for page in result["data"]["pages"]],
    }


def run(
    env: dict[str, str], pages: int, shard_pages: int, parallelism: int, rounds: int
) -> dict[str, Any]:
    api, store, ns, metrics_port, log = prepare(env, "shards")
    sharding = {
        "DOCJOBS_OPERATOR__SHARD_THRESHOLD_PAGES": "40",
        "DOCJOBS_RUNNER__PART_PAGES": str(shard_pages),
        "DOCJOBS_OPERATOR__SHARD_PARALLELISM": str(parallelism),
    }
    operator = start_operator(env, ns, metrics_port, log, pending=False, extra=sharding)
    try:
        wait_for(lambda: serving(f"http://127.0.0.1:{metrics_port}/metrics"), 30, 0.2)
        jobs = Jobs(api, store, ns)
        measured = []
        for n in range(rounds):
            pdf, _ = pdf_with_pages(pages, seed=7 + n)  # a new document: no answer from before
            # Every other round the sharded run goes first, so a change in the machine's
            # other load does not always favour the same side.
            order = (None, pages) if n % 2 == 0 else (pages, None)
            runs = {count: run_once(jobs, store, pdf, count) for count in order}
            one_pod, sharded = runs[None], runs[pages]
            measured.append(
                {
                    "same_result": one_pod.pop("pages") == sharded.pop("pages"),
                    "one_pod": one_pod,
                    "sharded": sharded,
                    "speedup": round(one_pod["wall_seconds"] / sharded["wall_seconds"], 2),
                }
            )
    finally:
        operator.terminate()
        operator.wait(30)
        api.delete(f"/api/v1/namespaces/{ns}")
    return {
        "pages": pages,
        "shard_pages": shard_pages,
        "parallelism": parallelism,
        "rounds": measured,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--shard-pages", type=int, default=25)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    started_rig = local_cluster("status", 30).returncode != 0
    if started_rig and local_cluster("up", 3600).returncode != 0:
        sys.exit("scripts/local-cluster up failed")
    try:
        env = _read_env(_state_dir() / "env")
        result = run(env, args.pages, args.shard_pages, args.parallelism, args.rounds)
    finally:
        if started_rig:
            local_cluster("down", 120)
    out = REPO / "bench" / "results" / f"shards-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    shards = -(-result["pages"] // result["shard_pages"])
    print(f"\n{result['machine']}\n")
    print(
        "| round | run | wall | pages/s | pods | load (1 min) | same result | one pod / sharded |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, measured in enumerate(result["rounds"], 1):
        runs = (("one pod", "one_pod"), (f"{shards} shards + merge", "sharded"))
        for label, key in runs:
            figures = measured[key]
            print(
                f"| {n} | {label} | {figures['wall_seconds']} s"
                f" | {result['pages'] / figures['wall_seconds']:.2f} | {figures['pods']}"
                f" | {figures['load_1min'][0]} -> {figures['load_1min'][1]}"
                f" | {measured['same_result']} | {measured['speedup']}x |"
            )


if __name__ == "__main__":
    main()
