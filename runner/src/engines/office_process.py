"""One LibreOffice per worker process, kept running across its documents.

A LibreOffice start costs about a second; a loaded document's conversion a fraction of
that. So a worker keeps one LibreOffice (``soffice.bin``, headless, listening on a pipe)
under a small bridge that speaks UNO for it (:mod:`office_bridge`, run by the system's
Python, which has LibreOffice's ``uno`` module). The worker starts it on its first Office
document and keeps it for ``office.documents_per_process`` documents; any failure, a
timeout or a crash ends it, and the next document starts a new one. A one-shot runner uses
it once.

Reusing a LibreOffice across documents is safe only as far as one document cannot change
what the next one meets: each document is loaded hidden and read-only, macros never run
(the load says so, whatever the profile says), links are never updated, and it is closed
before the next. The profile is the worker's own, made with macros off and linked content
blocked, made again after LibreOffice was killed. Where the kernel allows, the bridge and
LibreOffice run in a network namespace of their own.

The deadline of a document is kept here, from the moment LibreOffice can take it (its
start has a limit of its own): past it the bridge and every process under it are killed.
The bridge stays in the worker's process group and LibreOffice dies with the bridge (a
parent-death signal), so the pool's kill of a worker takes them along.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import resource
import selectors
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from docjobs.config import Settings
from docjobs.runner.engines import PermanentError
from docjobs.runner.engines.office_sandbox import (
    PIPE_DIR,
    PIPE_PREFIX,
    log_path,
    make_profile,
    no_network,
    pipes_of,
    profile_dir,
    sweep_pipes,
)

log = logging.getLogger(__name__)

TIMEOUT_SETTING = "DOCJOBS_OFFICE__TIMEOUT_SECONDS"
START_TIMEOUT_SETTING = "DOCJOBS_OFFICE__START_TIMEOUT_SECONDS"
_BRIDGE = Path(__file__).with_name("office_bridge.py")
_LOG_TAIL = 2000
"""Characters of the bridge's and LibreOffice's output the log keeps when they fail."""
_STOP_SECONDS = 10.0


class OfficeFailed(Exception):
    """LibreOffice answered that it could not convert the document, or died on it."""


class OfficeTimedOut(Exception):
    pass


class OfficeDidNotStart(Exception):
    """The bridge or LibreOffice ended before they could take a document: the runner's
    installation or its resources, not the document, so the attempt may be tried again."""


@dataclass(frozen=True)
class _Launch:
    """What a running LibreOffice was started with: another setting needs another one."""

    soffice: str
    python: str
    max_output_bytes: int
    cpu_seconds: int
    """CPU time one document may use: a little more than its wall-clock limit."""
    start_seconds: float
    isolate_network: bool


class OfficeProcess:
    """The bridge and the LibreOffice under it."""

    def __init__(self, launch: _Launch) -> None:
        self.launch = launch
        self.documents = 0
        self.office_pid: int | None = None
        sweep_pipes()
        self.pipe = f"{PIPE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        profile = make_profile()
        office_tmp = profile / "tmp"
        office_tmp.mkdir(exist_ok=True)
        config = {
            "parent": os.getpid(),
            "soffice": launch.soffice,
            "profile": profile.as_uri(),
            "pipe": self.pipe,
            "max_output_bytes": launch.max_output_bytes,
            "cpu_seconds": math.ceil(launch.start_seconds) + launch.cpu_seconds,
        }
        environment = {
            name: value
            for name, value in os.environ.items()
            if name not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
        } | {"HOME": str(profile), "TMPDIR": str(office_tmp)}
        command = [
            *(no_network() if launch.isolate_network else []),
            launch.python,
            str(_BRIDGE),
            json.dumps(config),
        ]
        with log_path().open("wb") as output:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=output,
                env=environment,
            )
        self._buffer = b""
        self._counted = 0.0
        """CPU seconds of the bridge and LibreOffice already in :func:`cpu_seconds`."""

    @property
    def alive(self) -> bool:
        return self._reap(0) is None

    def convert(
        self,
        source: Path,
        target: Path,
        filter_name: str,
        options: dict[str, Any],
        timeout_seconds: float,
    ) -> None:
        """``source`` exported to ``target`` by the filter within ``timeout_seconds``, once
        LibreOffice has started (within its own limit)."""
        if self.office_pid is None:
            self._wait_ready()
        deadline = time.monotonic() + timeout_seconds
        request = {
            "source": str(source),
            "target": str(target),
            "filter": filter_name,
            "options": options,
            "cpu_seconds": self.launch.cpu_seconds,
        }
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise OfficeFailed(self._ended()) from None
        self.documents += 1
        try:
            answer = self._read(deadline)
        finally:
            self._count_cpu()
        if not answer.get("ok"):
            raise OfficeFailed(str(answer.get("error")))

    def _wait_ready(self) -> None:
        try:
            ready = self._read(time.monotonic() + self.launch.start_seconds)
        except OfficeTimedOut:
            raise OfficeDidNotStart(
                f"LibreOffice did not start within {self.launch.start_seconds:g} s"
                f" ({START_TIMEOUT_SETTING})"
            ) from None
        except OfficeFailed as ended:
            raise OfficeDidNotStart(f"{ended}: {_last_line(_log_tail())}") from None
        if not ready.get("ready"):
            raise OfficeDidNotStart(str(ready.get("error")))
        self.office_pid = int(ready["pid"])

    def stop(self) -> None:
        """Closes LibreOffice as it would close itself; killed if it does not in time."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        self._reap(_STOP_SECONDS)
        self.kill()

    def kill(self) -> None:
        """Kills the bridge and every process under it, the deepest first, so that none is
        left to be adopted by init before its turn; then removes the pipes they leave."""
        pipes = {
            PIPE_DIR / f"OSL_PIPE_0_{self.pipe}",
            PIPE_DIR / f"OSL_PIPE_{os.getuid()}_{self.pipe}",
        }
        if self._reap(0) is None:
            try:
                tree = psutil.Process(self.process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                tree = []
            pipes |= pipes_of(tree)
            self._count_cpu()
            for member in reversed(tree):
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.kill()
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            psutil.wait_procs(tree, timeout=_STOP_SECONDS)
        self._reap()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        for pipe in pipes:
            pipe.unlink(missing_ok=True)

    def _read(self, deadline: float) -> dict[str, Any]:
        """The bridge's next line, by ``deadline``."""
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(descriptor, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OfficeTimedOut
                if not selector.select(left):
                    continue
                chunk = os.read(descriptor, 65536)
                if not chunk:
                    raise OfficeFailed(self._ended())
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _count_cpu(self) -> None:
        """Adds what the bridge and LibreOffice used since the last count to
        :func:`cpu_seconds`."""
        global _cpu_used
        try:
            root = psutil.Process(self.process.pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0.0
        for member in members:
            with contextlib.suppress(psutil.Error):
                times = member.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        if total > self._counted:
            _cpu_used += total - self._counted
            self._counted = total

    def _reap(self, timeout: float | None = None) -> int | None:
        """The bridge's exit code once it has ended (within ``timeout``; 0 only looks).
        Every wait goes through here: what a reaped bridge and the children it waited for
        used is now in this process's ``getrusage`` of its children, so it leaves
        :func:`cpu_seconds`."""
        global _cpu_used
        before = _children_cpu()
        try:
            returncode = self.process.poll() if timeout == 0 else self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        _cpu_used -= _children_cpu() - before
        return returncode

    def _ended(self) -> str:
        returncode = self._reap(_STOP_SECONDS)
        if returncode is None:
            return "LibreOffice's bridge closed its output"
        how = f"killed by signal {-returncode}" if returncode < 0 else f"exited with {returncode}"
        return f"LibreOffice's bridge {how}"


_warm: OfficeProcess | None = None
_cpu_used = 0.0


def cpu_seconds() -> float:
    """CPU seconds the worker's LibreOffice processes used for this process's documents
    that ``getrusage`` does not count: a LibreOffice kept running is not a child waited
    for. A usage measure adds it to the process's own."""
    return _cpu_used


def convert(
    source: Path, target: Path, filter_name: str, options: dict[str, Any], settings: Settings
) -> None:
    """Exports ``source`` to ``target`` through the worker's LibreOffice, started when there
    is none, under ``office.timeout_seconds``; a failure of any kind ends that LibreOffice."""
    global _warm
    office = settings.office
    launch = _launch(settings)
    if _warm is not None and (_warm.launch != launch or not _warm.alive):
        _warm.kill()
        _warm = None
    if _warm is None:
        _warm = OfficeProcess(launch)
    process = _warm
    try:
        process.convert(source, target, filter_name, options, office.timeout_seconds)
    except OfficeTimedOut:
        _end(process)
        raise PermanentError(
            "OfficeTimeout",
            f"LibreOffice did not finish converting the document within"
            f" {office.timeout_seconds:g} s ({TIMEOUT_SETTING}).",
        ) from None
    except OfficeFailed as failed:
        log.warning("LibreOffice failed: %s; its output: %s", failed, _log_tail())
        if process.alive:
            # It refused the document and lives: closed as it closes itself, its profile
            # whole. Any failure ends it: what a document did to it is not known.
            _warm = None
            process.stop()
        else:
            _end(process)
        raise
    except BaseException:  # OfficeDidNotStart, the attempt's CPU ceiling, an interrupt
        _end(process)
        raise
    if process.documents >= office.documents_per_process:
        _warm = None
        process.stop()


def shut_down() -> None:
    """Closes the worker's LibreOffice, if it has one."""
    global _warm
    if _warm is not None:
        _warm.stop()
        _warm = None


atexit.register(shut_down)


def _end(process: OfficeProcess) -> None:
    """Kills ``process``; its profile is made again, since LibreOffice may have been
    killed while writing it."""
    global _warm
    _warm = None
    process.kill()
    shutil.rmtree(profile_dir(), ignore_errors=True)


def _launch(settings: Settings) -> _Launch:
    office = settings.office
    soffice = shutil.which(office.soffice)
    if soffice is None:
        raise PermanentError(
            "OfficeNotInstalled",
            f"LibreOffice ({office.soffice}) is not installed where this runner runs;"
            " scripts/setup and the runner image install it (DOCJOBS_OFFICE__SOFFICE).",
        )
    python = shutil.which(office.uno_python)
    if python is None:
        raise PermanentError(
            "OfficeNotInstalled",
            f"The Python with LibreOffice's uno module ({office.uno_python}) is not installed"
            " where this runner runs; scripts/setup and the runner image install python3-uno"
            " (DOCJOBS_OFFICE__UNO_PYTHON).",
        )
    return _Launch(
        soffice=_office_binary(soffice),
        python=python,
        max_output_bytes=office.max_output_mb * 1024 * 1024,
        cpu_seconds=math.ceil(office.timeout_seconds) + 5,
        start_seconds=office.start_timeout_seconds,
        isolate_network=office.isolate_network,
    )


def _children_cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


def _office_binary(soffice: str) -> str:
    """``soffice.bin`` beside the ``soffice`` launcher script: started by the bridge
    itself, it dies with the bridge; the launcher's own child would not."""
    resolved = Path(soffice).resolve()
    binary = resolved.with_name("soffice.bin")
    return str(binary) if resolved.name == "soffice" and binary.exists() else soffice


def _log_tail() -> str:
    try:
        return log_path().read_text(errors="replace")[-_LOG_TAIL:]
    except OSError:
        return ""


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
