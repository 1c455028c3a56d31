"""Warm ``docjobs runner --worker`` processes: engines stay loaded between jobs.

A worker runs in its own session so that killing it takes its engine's children (Tesseract)
with it, and it dies with the supervisor (PR_SET_PDEATHSIG) so a killed service leaves no
worker behind. With a scratch root, each worker writes its attempts' files in a directory
of its own there (its ``TMPDIR``), removed once the worker is dead (see :mod:`.scratch`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from docjobs.domain.clock import utcnow
from docjobs.domain.lifecycle import AttemptTimedOut, Observation, RunnerExited
from docjobs.domain.models import (
    EXIT_PERMANENT,
    Engine,
    JobError,
    RunnerSummary,
    RunOutcome,
    WorkerBatch,
    WorkerRequest,
    engine_of,
)

from . import scratch as scratch_dirs


class WorkerDied(Exception):
    def __init__(self, returncode: int | None) -> None:
        super().__init__(f"runner worker exited with {returncode}")
        self.returncode = returncode


class Worker:
    def __init__(self, process: asyncio.subprocess.Process, scratch: Path | None = None) -> None:
        self.process = process
        self.jobs_done = 0
        self.holds_torch = False
        """Whether it has run docTR: PyTorch and the models stay in its memory (~1 GB)."""
        self.scratch = scratch
        """The worker's own directory for its attempts' files, if the pool gave it one."""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def run(self, request: WorkerRequest) -> RunOutcome:
        assert self.process.stdin and self.process.stdout
        try:
            self.process.stdin.write(request.model_dump_json().encode() + b"\n")
            await self.process.stdin.drain()
            line = await self.process.stdout.readline()
        except (BrokenPipeError, ConnectionResetError):
            line = b""
        if not line:
            raise WorkerDied(await self.process.wait())
        self.jobs_done += 1
        return RunOutcome.model_validate_json(line)

    async def run_batch(self, batch: WorkerBatch, outcomes: list[RunOutcome]) -> None:
        """Runs ``batch``, appending each request's outcome to ``outcomes`` as its line
        comes: those read before the worker died or hung still count."""
        assert self.process.stdin and self.process.stdout
        try:
            self.process.stdin.write(batch.model_dump_json().encode() + b"\n")
            await self.process.stdin.drain()
            for _ in batch.requests:
                line = await self.process.stdout.readline()
                if not line:
                    break
                outcomes.append(RunOutcome.model_validate_json(line))
                self.jobs_done += 1
        except (BrokenPipeError, ConnectionResetError):
            pass
        if len(outcomes) < len(batch.requests):
            raise WorkerDied(await self.process.wait())

    def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def reap(self) -> None:
        self.kill()
        with contextlib.suppress(ProcessLookupError):
            await self.process.wait()


class WorkerPool:
    torch_idle_seconds: float = 30.0
    """A worker holding PyTorch is retired once idle this long, giving its memory back; the
    next docTR job loads it again in a fresh worker (seconds)."""

    def __init__(
        self,
        size: int,
        max_jobs_per_worker: int,
        env: dict[str, str],
        scratch_root: Path | None = None,
    ) -> None:
        self.size = size
        self.max_jobs_per_worker = max_jobs_per_worker
        self.env = env
        self.scratch_root = scratch_root
        """Where the workers' scratch directories go; None: the system's temp directory."""
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._removals: set[asyncio.Task[None]] = set()

    async def warm_up(self) -> None:
        for _ in range(self.size - len(self._idle)):
            self._idle.append(await self._spawn())

    async def acquire(self) -> Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            self.discard(worker)
        return await self._spawn()

    def release(self, worker: Worker) -> None:
        if worker.alive and worker.jobs_done < self.max_jobs_per_worker:
            self._idle.append(worker)
            if worker.holds_torch:
                asyncio.get_running_loop().call_later(
                    self.torch_idle_seconds, self._retire_if_idle, worker, worker.jobs_done
                )
        else:
            self.discard(worker)

    def discard(self, worker: Worker) -> None:
        """Kills ``worker``; its scratch directory goes once it is dead."""
        self._all.discard(worker)
        worker.kill()
        if worker.scratch is not None:
            removal = asyncio.create_task(self._remove_scratch(worker), name="worker-scratch")
            self._removals.add(removal)
            removal.add_done_callback(self._removals.discard)

    def _retire_if_idle(self, worker: Worker, jobs_done: int) -> None:
        """Retires ``worker`` if it has stayed idle since it had done ``jobs_done`` jobs."""
        if worker.jobs_done == jobs_done and worker in self._idle:
            self._idle.remove(worker)
            self.discard(worker)

    async def close(self) -> None:
        for worker in list(self._all):
            await worker.reap()
            if worker.scratch is not None:
                await asyncio.to_thread(scratch_dirs.remove, worker.scratch)
        await asyncio.gather(*self._removals, return_exceptions=True)
        self._all.clear()
        self._idle.clear()

    @staticmethod
    async def _remove_scratch(worker: Worker) -> None:
        # Only once the worker and its engine's children are gone can nothing write there.
        await worker.reap()
        assert worker.scratch is not None
        await asyncio.to_thread(scratch_dirs.remove, worker.scratch)

    async def _spawn(self) -> Worker:
        env, directory = self.env, None
        if self.scratch_root is not None:
            directory = await asyncio.to_thread(scratch_dirs.worker_directory, self.scratch_root)
            # Engines' libraries (pytesseract, WeasyPrint) write temp files of their own:
            # they land there too, and go with the directory.
            env = {**env, "TMPDIR": str(directory)}
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "docjobs.runner",
                "--worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
                limit=1 << 20,
            )
        except BaseException:
            if directory is not None:
                await asyncio.to_thread(scratch_dirs.remove, directory)
            raise
        worker = Worker(process, directory)
        self._all.add(worker)
        return worker


async def run_attempt(
    pool: WorkerPool, worker: Worker, request: WorkerRequest, timeout: float
) -> Observation:
    """How ``request``'s attempt ended on ``worker``, which goes back to ``pool`` (or is
    killed, when it hung or died)."""
    try:
        outcome = await asyncio.wait_for(worker.run(request), timeout)
    except TimeoutError:
        pool.discard(worker)
        return AttemptTimedOut(utcnow())
    except WorkerDied as died:
        pool.discard(worker)
        summary = _died(died)
        code = EXIT_PERMANENT if summary.error and summary.error.permanent else died.returncode
        return RunnerExited(code or 1, summary, utcnow())
    worker.holds_torch = worker.holds_torch or loads_torch(request) or read_with_doctr(outcome)
    pool.release(worker)
    return RunnerExited(outcome.exit_code, outcome.summary, utcnow())


async def run_batch(
    pool: WorkerPool, worker: Worker, requests: Sequence[WorkerRequest], timeout: float
) -> list[Observation]:
    """How each of ``requests``' attempts ended, read together on ``worker`` (docTR
    documents, see :class:`WorkerBatch`), in order; ``timeout`` bounds the whole batch (the
    largest of its documents' deadlines: each document keeps its own inside the worker).

    A worker that hangs is killed and every document it had not answered for times out; one
    that dies fails those documents as :func:`run_attempt` fails one."""
    try:
        batch = WorkerBatch(requests=list(requests))
    except ValueError:
        pool.release(worker)
        raise
    outcomes: list[RunOutcome] = []
    ended: list[Observation] = []
    try:
        await asyncio.wait_for(worker.run_batch(batch, outcomes), timeout)
    except TimeoutError:
        pool.discard(worker)
        ended = [AttemptTimedOut(utcnow()) for _ in requests[len(outcomes) :]]
    except WorkerDied as died:
        pool.discard(worker)
        summary = _died(died)
        code = EXIT_PERMANENT if summary.error and summary.error.permanent else died.returncode
        ended = [RunnerExited(code or 1, summary, utcnow()) for _ in requests[len(outcomes) :]]
    else:
        worker.holds_torch = True
        pool.release(worker)
    answered = [RunnerExited(o.exit_code, o.summary, utcnow()) for o in outcomes]
    return [*answered, *ended]


def loads_torch(request: WorkerRequest) -> bool:
    """Whether the attempt runs docTR, which loads PyTorch into the worker."""
    return engine_of(request.spec.operation) is Engine.DOCTR


def read_with_doctr(outcome: RunOutcome) -> bool:
    """Whether the ``auto`` tier had docTR read some page, which loaded PyTorch too."""
    tiers = outcome.summary.details.get("pages_by_tier")
    return isinstance(tiers, dict) and bool(tiers.get("doctr"))


def _died(died: WorkerDied) -> RunnerSummary:
    code = died.returncode
    if code == -signal.SIGABRT:
        # A worker runs under its data limit, and the native libraries it drives (PDFium,
        # GLib) abort when an allocation is refused there rather than fail the call: what
        # made it abort would do so again on every attempt.
        message = (
            "the runner process aborted: the document needs more memory than its ceiling"
            " (DOCJOBS_RUNNER__MEMORY_LIMIT_MB)"
        )
        error = JobError(reason="MemoryCeilingExceeded", message=message, permanent=True)
        return RunnerSummary(error=error)
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
    return RunnerSummary(
        error=JobError(reason="RunnerCrashed", message=f"the runner process {how}", permanent=False)
    )
