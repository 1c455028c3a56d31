"""Work on untrusted input in a short-lived child process, under a wall-clock limit and an
address-space limit.

Parsing a hostile PDF or compiling a hostile pattern can take gigabytes or minutes, and a
Python process rarely gives freed memory back to the system. A child bounds both, and
whatever it took is returned when it exits.

Children are forked by a *zygote*: one helper process (``python -m docjobs.bounded``),
started on first use, single-threaded, that has imported the usual targets' modules
(:data:`PRELOAD`). Forking the caller itself is unsafe (it has threads, and a fork may
inherit a lock another thread holds), and a fresh interpreter per call spends most of a
second importing PDFium and pypdf; a fork of the zygote starts in milliseconds.

Protocol: the caller writes one JSON request a line to the zygote's stdin; the zygote
forks, answers ``{"id", "pid"}`` at once and ``{"id", "exit"}`` when the child has ended;
the child writes its answer to the file the request names. This module imports nothing of
docjobs at import time, so any layer may use it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import IO, Any, Literal

log = logging.getLogger(__name__)

PRELOAD = ("docjobs.pdf_pages", "docjobs.templates.patterns")
"""Modules the zygote imports once, so that its children need not."""
_MEMORY_EXIT = 75
"""The child's exit status when it ran out of its address space."""
_ERROR_EXIT = 76
"""The child's exit status when its target raised; the answer file holds why."""
_CHILDREN = threading.BoundedSemaphore(max(2, os.cpu_count() or 1))
"""Children alive at once in this process: each may take its whole memory limit."""


@dataclass(frozen=True)
class Bounds:
    seconds: float
    """Wall-clock seconds the child may run, its start included."""
    memory_mb: int
    """MiB of address space the child may map, the zygote's own mappings included."""


class CeilingReached(Exception):
    """The child ran out of time or memory before it answered."""

    def __init__(self, ceiling: Literal["seconds", "memory"], bounds: Bounds) -> None:
        self.ceiling = ceiling
        self.bounds = bounds
        limit = f"{bounds.seconds:g} s" if ceiling == "seconds" else f"{bounds.memory_mb} MiB"
        super().__init__(f"the child process reached its limit of {limit}")


def run_bounded(target: str, argument: Any, bounds: Bounds) -> Any:
    """What ``target`` (``"package.module:function"``) returns for ``argument``, called in a
    child process within ``bounds``; both travel as JSON.

    Raises :class:`CeilingReached` when the child runs out of time or memory (a child
    killed by a signal is counted as out of memory: allocation failures in C code abort),
    and ``RuntimeError`` when it fails in another way. Blocks: call it off the event loop.
    """
    with _CHILDREN:
        return _zygote().run(target, argument, bounds)


@dataclass
class _Call:
    started: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    pid: int | None = None
    exit: int | None = None


class _Zygote:
    """The caller's side: one zygote process, and a thread reading what it reports."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "docjobs.bounded"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.calls: dict[int, _Call] = {}
        self.numbers = count(1)
        self.lock = threading.Lock()
        # Removed with this object, at the latest when the process exits.
        self._answers = tempfile.TemporaryDirectory(prefix="docjobs-bounded-")
        self.answers = Path(self._answers.name)
        threading.Thread(target=self._read, name="docjobs-zygote", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, target: str, argument: Any, bounds: Bounds) -> Any:
        number = next(self.numbers)
        answer = self.answers / f"{number}.json"
        call = _Call()
        request = {
            "id": number,
            "target": target,
            "argument": argument,
            "memory_mb": bounds.memory_mb,
            "answer": str(answer),
        }
        with self.lock:
            self.calls[number] = call
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        try:
            if not call.ended.wait(bounds.seconds):
                if call.started.wait(1) and call.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(call.pid, signal.SIGKILL)
                call.ended.wait(5)
                raise CeilingReached("seconds", bounds)
            if call.exit == 0:
                return json.loads(answer.read_text())["result"]
            if call.exit == _ERROR_EXIT:
                why = json.loads(answer.read_text())["error"]
                raise RuntimeError(f"{target} failed in its child process: {why}")
            if call.exit == _MEMORY_EXIT or (call.exit is not None and call.exit < 0):
                raise CeilingReached("memory", bounds)
            raise RuntimeError(f"{target} ended without an answer (exit {call.exit})")
        finally:
            with self.lock:
                self.calls.pop(number, None)
            answer.unlink(missing_ok=True)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            report = json.loads(line)
            with self.lock:
                call = self.calls.get(report["id"])
            if call is None:
                continue
            if "pid" in report:
                call.pid = report["pid"]
                call.started.set()
            else:
                call.exit = report["exit"]
                call.ended.set()
        # The zygote is gone: whoever still waits gets an answer, not a hang.
        with self.lock:
            for call in self.calls.values():
                call.exit = -1 if call.exit is None else call.exit
                call.ended.set()


_ZYGOTE: _Zygote | None = None
_ZYGOTE_LOCK = threading.Lock()


def _zygote() -> _Zygote:
    global _ZYGOTE
    with _ZYGOTE_LOCK:
        if _ZYGOTE is None or not _ZYGOTE.alive:
            _ZYGOTE = _Zygote()
        return _ZYGOTE


# --- the zygote's side ------------------------------------------------------------------------


def _serve(requests: int, reports: IO[str]) -> None:
    """Fork a child per request line; report each child's pid, then its exit status."""
    for name in PRELOAD:
        importlib.import_module(name)
    running: dict[int, int] = {}  # pid -> request id
    pending = b""  # read from the pipe, not yet a whole line
    while True:
        ready, _, _ = select.select([requests], [], [], 0.02)
        if ready:
            chunk = os.read(requests, 65536)
            if not chunk:
                return  # the caller is gone; its children end with their limits
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request)
                running[pid] = request["id"]
                reports.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
                reports.flush()
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            exit_code = os.waitstatus_to_exitcode(status)
            reports.write(json.dumps({"id": running.pop(pid), "exit": exit_code}) + "\n")
            reports.flush()


def _child(request: dict[str, Any]) -> None:
    """Limit the address space, call the target, write the answer, never return."""
    code = 0
    os.dup2(2, 1)  # what a library prints must not reach the zygote's reports
    try:
        limit = int(request["memory_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        module_name, _, function_name = str(request["target"]).partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        answer = json.dumps({"result": function(request["argument"])})
    except MemoryError:
        os._exit(_MEMORY_EXIT)  # nothing more can be allocated, not even a traceback
    except Exception as exc:
        answer, code = json.dumps({"error": f"{type(exc).__name__}: {exc}"[:500]}), _ERROR_EXIT
    try:
        Path(request["answer"]).write_text(answer)
    except MemoryError:
        os._exit(_MEMORY_EXIT)
    os._exit(code)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the caller to handle
    _serve(sys.stdin.fileno(), sys.stdout)
