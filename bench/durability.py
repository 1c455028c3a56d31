"""The cost of ``synchronous=FULL`` for the writes that acknowledge a job, against ``NORMAL``,
side by side in one run (embedded mode: SQLite in WAL mode, local object store).

    .venv/bin/python bench/durability.py [--jobs 300] [--rounds 3] [--threads 4] [--dir DIR]

Before a submission is answered 201/202, the embedded backend copies its input into the
object store (``fsync``) and commits its job row with ``synchronous=FULL`` (the WAL is
synced at the commit). With ``NORMAL`` the commit reaches the WAL but not the disk: a crash
of the process loses nothing, a power loss may lose jobs already acknowledged. Both are timed
on the same files in alternating blocks, each ``--rounds`` times:

- the job row alone (``SQLiteJobStore.create``), one submitter: per-submission latency;
- input + job row, as a submission writes them, one submitter and ``--threads`` at once
  (commits then queue for SQLite's write lock): submissions per second.

``--dir`` should be on the disk a data directory would use (the default temporary directory
may be a tmpfs, where an ``fsync`` costs nothing).
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docjobs.backends.base import Submission, job_spec, new_job_id, store_input
from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.jobs import SQLiteJobStore
from docjobs.config import JobSettings
from docjobs.domain.models import ConvertToPdf
from docjobs.storage.base import object_keys
from docjobs.storage.local import LocalStore


class NormalCommits(SQLiteDatabase):
    """The database with every commit at ``synchronous=NORMAL``, acknowledged jobs included."""

    def transaction(self, durable: bool = False) -> AbstractContextManager[object]:  # type: ignore[override]
        return super().transaction(durable=False)


def submission(source: Path) -> Submission:
    return Submission(
        tenant="bench",
        operation=ConvertToPdf(source_format="text"),
        source=source,
        file_name="note.txt",
        content_type="text/plain",
        sha256="0" * 64,
        size=source.stat().st_size,
        page_count=None,
        interactive=False,
        fingerprint=os.urandom(16).hex(),
    )


def submit(store: SQLiteJobStore, objects: LocalStore | None, source: Path) -> None:
    """What a submission writes before it is acknowledged (``objects`` None: the row only)."""
    given = submission(source)
    job_id = new_job_id()
    _, input_key = object_keys(given.tenant, job_id)
    if objects is not None:
        store_input(objects, input_key, given)
    store.create(job_spec(given, job_id, input_key, JobSettings()))


def timed(calls: int, threads: int, call: Callable[[], None]) -> tuple[float, list[float]]:
    """Wall seconds for ``calls`` calls on ``threads`` threads, and each call's seconds."""
    latencies: list[float] = []

    def one() -> None:
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    if threads == 1:
        for _ in range(calls):
            one()
    else:
        with ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(one) for _ in range(calls)]:
                future.result()
    return time.perf_counter() - started, latencies


def stores(root: Path) -> Iterator[tuple[str, SQLiteJobStore]]:
    """FULL then NORMAL, on one database file, each with connections of its own."""
    path = root / "docjobs.db"
    yield "FULL", SQLiteJobStore(SQLiteDatabase(path))
    yield "NORMAL", SQLiteJobStore(NormalCommits(path))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)

    cases = {
        "job row, 1 submitter": (False, 1),
        "input + job row, 1 submitter": (True, 1),
        f"input + job row, {args.threads} submitters": (True, args.threads),
    }
    # case -> mode -> (submissions/s, median ms) per round
    found: dict[str, dict[str, list[tuple[float, float]]]] = {c: {} for c in cases}
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        root = Path(scratch)
        source = root / "note.txt"
        source.write_bytes(b"Quarterly report\n" * 64)
        objects = LocalStore(root / "objects")
        modes = dict(stores(root))
        for mode_store in modes.values():  # warm-up: schema, connections, page cache
            timed(20, 1, functools.partial(submit, mode_store, objects, source))
        for _ in range(args.rounds):
            for case, (with_input, threads) in cases.items():
                for mode, store in modes.items():
                    wall, latencies = timed(
                        args.jobs,
                        threads,
                        functools.partial(submit, store, objects if with_input else None, source),
                    )
                    found[case].setdefault(mode, []).append(
                        (args.jobs / wall, statistics.median(latencies) * 1000)
                    )

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
        f"{args.jobs} submissions per block, {args.rounds} rounds, files in {args.dir}\n"
    )
    print(
        "| writes | FULL: subm./s, median ms | NORMAL: subm./s, median ms "
        "| FULL / NORMAL subm./s, median (range) |"
    )
    print("|---|---|---|---|")
    for case, by_mode in found.items():
        full, normal = by_mode["FULL"], by_mode["NORMAL"]
        ratios = sorted(f[0] / n[0] for f, n in zip(full, normal, strict=True))
        print(
            f"| {case} | {_span(full)} | {_span(normal)} | "
            f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}x - {ratios[-1]:.2f}x) |"
        )


def _span(rows: list[tuple[float, float]]) -> str:
    rates = sorted(r for r, _ in rows)
    medians = sorted(m for _, m in rows)
    return f"{rates[0]:,.0f}-{rates[-1]:,.0f}, {medians[0]:.2f}-{medians[-1]:.2f} ms"


if __name__ == "__main__":
    main()
