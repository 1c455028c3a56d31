"""Embedded mode at volume against bare WeasyPrint, side by side in one run.

    .venv/bin/python bench/volume.py [--jobs 40] [--rounds 15] [--paragraphs 20]
                                     [--against REV] [--json FILE]

Measures, on the same machine and one-page Markdown documents (each distinct, so that no
submission is answered from an earlier job):

  * **burst**: ``--jobs`` async Markdown -> PDF conversions sent at once from 8 client
    threads to ``docjobs serve`` (embedded mode, 2 runner workers), timed from the first
    submission until the job listing counts them all complete (polled every 50 ms); against
    bare WeasyPrint (markdown-it, then ``HTML.write_pdf``) converting the same number of
    documents in 2 warm processes.
  * **one async job**: one submission at a time, timed from sending it until its event
    stream (``GET /api/v1/jobs/{id}/events``) sends the end; against the bare conversion
    of one document in one warm process (median of ``--rounds``).

``--against REV`` also serves every case from the committed revision ``REV`` (see
``bench/reads.py``), in the same run, cases interleaved: a change's before and after.
Prints a Markdown table with the ratios and the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.reads import revision_tree
from tests.conftest import Server

CLIENT_THREADS = 8


def document(n: int, paragraphs: int = 20) -> str:
    """A one-page Markdown report, distinct for every ``n``: 20 paragraphs fill most of
    the page; 1 is a note, where the engine's share of each job is smallest."""
    return (
        f"# Quarterly report {n}\n\n"
        + "Revenue grew in every region this quarter.\n\n" * paragraphs
    )


def timed_burst(server: Server, key: str, docs: list[str]) -> tuple[float, float]:
    """Seconds from the first submission until every job is complete, and until every
    submission was answered (what the API alone allows)."""
    auth = {"X-API-Key": key}
    parts = [docs[i::CLIENT_THREADS] for i in range(CLIENT_THREADS)]
    failures: list[BaseException] = []
    answered: list[float] = []

    def send(mine: list[str]) -> None:
        session = requests.Session()
        try:
            for doc in mine:
                answer = session.post(
                    f"{server.base}/api/v1/convert/markdown-to-pdf?async=true",
                    headers=auth,
                    data={"content": doc},
                    timeout=60,
                )
                assert answer.status_code == 202, answer.text
            answered.append(time.perf_counter())
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=send, args=(p,)) for p in parts]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    session = requests.Session()
    while True:
        listed = session.get(
            f"{server.base}/api/v1/jobs",
            params={"status": "complete", "limit": 1},
            headers=auth,
            timeout=30,
        ).json()
        if listed["total"] >= len(docs):
            break
        if failures:
            raise failures[0]
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    for thread in threads:
        thread.join()
    return elapsed, max(answered, default=started) - started


# --- bare WeasyPrint ------------------------------------------------------------------------


def _bare_convert(markdown: str) -> int:
    """The page the conversion engine builds (the same HTML and stylesheet), rendered by
    WeasyPrint with nothing around it."""
    from weasyprint import HTML

    from docjobs.runner.engines.convert import _to_html

    pdf = HTML(string=_to_html("markdown", markdown)).write_pdf()
    return len(pdf or b"")


def bare_burst(docs: list[str]) -> float:
    """Seconds for 2 warm processes to convert ``docs``."""
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(_bare_convert, [document(-1 - i) for i in range(4)], chunksize=1)  # warm
        started = time.perf_counter()
        pool.map(_bare_convert, docs, chunksize=1)
        return time.perf_counter() - started


def bare_single(docs: list[str]) -> list[float]:
    _bare_convert(document(-100))
    samples = []
    for doc in docs:
        started = time.perf_counter()
        _bare_convert(doc)
        samples.append(time.perf_counter() - started)
    return samples


# --- docjobs --------------------------------------------------------------------------------


class Target:
    def __init__(self, name: str, data_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.server = Server(data_dir, env={"DOCJOBS_RUNNER__CONCURRENCY": "2", **env}).start()
        self.tenants = iter(range(10**6))
        self.auth = {"X-API-Key": self.server.key("warm", "business")}
        self.session = requests.Session()
        # Warm-up: both workers load their engine, the routes their imports.
        self.burst([document(-1 - i) for i in range(4)])

    def submit(self, session: requests.Session, auth: dict[str, str], doc: str) -> str:
        r = session.post(
            f"{self.server.base}/api/v1/convert/markdown-to-pdf?async=true",
            headers=auth,
            data={"content": doc},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        return str(r.json()["job_id"])

    def burst(self, docs: list[str]) -> float:
        """Seconds from the first submission until every job is complete."""
        key = self.server.key(f"burst{next(self.tenants)}", "business")
        return timed_burst(self.server, key, docs)[0]

    def single(self, doc: str) -> float:
        """Seconds from sending one submission until its event stream ends."""
        started = time.perf_counter()
        job_id = self.submit(self.session, self.auth, doc)
        with self.session.get(
            f"{self.server.base}/api/v1/jobs/{job_id}/events",
            headers=self.auth,
            stream=True,
            timeout=60,
        ) as stream:
            for line in _lines(stream):
                if line == "event: end":
                    break
        elapsed = time.perf_counter() - started
        return elapsed

    def stop(self) -> None:
        self.server.stop()


def _lines(response: requests.Response) -> Iterator[str]:
    # Each chunk as it arrives: read a byte at a time, the end event's ~1.5 KB cost the
    # client itself several milliseconds after the job had ended.
    for raw in response.iter_lines(chunk_size=None):
        yield raw.decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--bursts", type=int, default=3, help="bursts per target, interleaved")
    parser.add_argument("--paragraphs", type=int, default=20, help="per document")
    parser.add_argument("--against", metavar="REV", help="also serve every case from REV")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    counter = iter(range(10**9))

    def new_document() -> str:
        return document(next(counter), args.paragraphs)

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        variants: dict[str, dict[str, str]] = {}
        if args.against:
            path = revision_tree(args.against, scratch / "revision")
            variants[args.against] = {"PYTHONPATH": str(path)}
        variants["this tree"] = {}
        targets = [
            Target(name, scratch / f"data-{i}", env)
            for i, (name, env) in enumerate(variants.items())
        ]
        try:
            bursts: dict[str, list[float]] = {t.name: [] for t in targets}
            bare_bursts: list[float] = []
            for _ in range(args.bursts):
                bare_bursts.append(bare_burst([new_document() for _ in range(args.jobs)]))
                for target in targets:
                    docs = [new_document() for _ in range(args.jobs)]
                    bursts[target.name].append(target.burst(docs))
            singles: dict[str, list[float]] = {t.name: [] for t in targets}
            bare_singles: list[float] = []
            for _ in range(args.rounds):
                bare_singles += bare_single([new_document()])
                for target in targets:
                    singles[target.name].append(target.single(new_document()))
        finally:
            for target in targets:
                target.stop()
    load_after = os.getloadavg()[0]

    bare_rate = args.jobs / statistics.median(bare_bursts)
    bare_one = statistics.median(bare_singles)
    rows = []
    for name in variants:
        rate = args.jobs / statistics.median(bursts[name])
        one = statistics.median(singles[name])
        rows.append(
            {
                "served by": name,
                "burst jobs/s": rate,
                "burst / bare": rate / bare_rate,
                "one job ms": one * 1000,
                "one job p90 ms": sorted(singles[name])[int(0.9 * (len(singles[name]) - 1))] * 1000,
                "one job / bare": one / bare_one,
                "bursts s": bursts[name],
            }
        )
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "load average (1 min) before, after": [load_before, load_after],
        "jobs per burst": args.jobs,
        "paragraphs per document": args.paragraphs,
        "bare WeasyPrint, 2 processes, jobs/s": bare_rate,
        "bare WeasyPrint, one document, ms": bare_one * 1000,
        "bare bursts s": bare_bursts,
        "rows": rows,
    }
    print(
        f"{report['machine']}; load {load_before:.1f} -> {load_after:.1f}; "
        f"{args.jobs} jobs x {args.bursts} bursts, {args.rounds} single rounds\n"
    )
    print(f"bare WeasyPrint: {bare_rate:.1f} jobs/s in 2 processes, {bare_one * 1000:.1f} ms one\n")
    print("| served by | burst jobs/s | burst / bare | one async job | p90 | one / bare |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['served by']} | {row['burst jobs/s']:.1f} | {row['burst / bare']:.2f}x "
            f"| {row['one job ms']:.0f} ms | {row['one job p90 ms']:.0f} ms "
            f"| {row['one job / bare']:.2f}x |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
