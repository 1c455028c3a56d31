"""One serving process per data directory.

Start-up recovery requeues every job the database shows as running: a second server on a
directory in use would take the live server's jobs from under it. The lock is an ``flock``
on ``serve.lock``, so the kernel releases it when the holder dies, even by SIGKILL, and a
crashed server never blocks the next start.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "serve.lock"


class DataDirectoryInUse(RuntimeError):
    def __init__(self, directory: Path, holder: str) -> None:
        self.directory = directory
        self.holder = holder
        super().__init__(
            f"the data directory {directory} is in use by another docjobs server"
            f" ({holder}); stop it first, or serve another directory with --data-dir"
        )


class DataDirectoryLock:
    """An exclusive lock on a data directory, holding the holder's pid for the message a
    second server prints."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Takes the lock, or raises :class:`DataDirectoryInUse` at once; a no-op when held."""
        if self._fd is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise DataDirectoryInUse(
                self.directory, f"process {holder}" if holder else "a process"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None
