"""Warm ``docjobs runner --worker`` processes: engines stay loaded between jobs.

A worker runs in its own session so that killing it takes its engine's children (Tesseract)
with it, and it dies with the supervisor (PR_SET_PDEATHSIG) so a killed service leaves no
worker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from docjobs.domain.clock import utcnow
from docjobs.domain.lifecycle import AttemptTimedOut, Observation, RunnerExited
from docjobs.domain.models import JobError, RunnerSummary, RunOutcome, WorkerRequest


class WorkerDied(Exception):
    def __init__(self, returncode: int | None) -> None:
        super().__init__(f"runner worker exited with {returncode}")
        self.returncode = returncode


class Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.jobs_done = 0

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

    def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def reap(self) -> None:
        self.kill()
        with contextlib.suppress(ProcessLookupError):
            await self.process.wait()


class WorkerPool:
    def __init__(self, size: int, max_jobs_per_worker: int, env: dict[str, str]) -> None:
        self.size = size
        self.max_jobs_per_worker = max_jobs_per_worker
        self.env = env
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()

    async def warm_up(self) -> None:
        for _ in range(self.size - len(self._idle)):
            self._idle.append(await self._spawn())

    async def acquire(self) -> Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            self._all.discard(worker)
        return await self._spawn()

    def release(self, worker: Worker) -> None:
        if worker.alive and worker.jobs_done < self.max_jobs_per_worker:
            self._idle.append(worker)
        else:
            self._all.discard(worker)
            worker.kill()

    def discard(self, worker: Worker) -> None:
        self._all.discard(worker)
        worker.kill()

    async def close(self) -> None:
        for worker in list(self._all):
            await worker.reap()
        self._all.clear()
        self._idle.clear()

    async def _spawn(self) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "docjobs.runner",
            "--worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self.env,
            start_new_session=True,
            limit=1 << 20,
        )
        worker = Worker(process)
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
        return RunnerExited(died.returncode or 1, _died(died), utcnow())
    pool.release(worker)
    return RunnerExited(outcome.exit_code, outcome.summary, utcnow())


def _died(died: WorkerDied) -> RunnerSummary:
    code = died.returncode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
    return RunnerSummary(
        error=JobError(reason="RunnerCrashed", message=f"the runner process {how}", permanent=False)
    )
