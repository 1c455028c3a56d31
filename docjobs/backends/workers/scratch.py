"""Where warm runner workers keep an attempt's files: one directory per worker, under one root.

An attempt writes the tenant's input, rendered pages and OCR text to local disk. The runner
removes its scratch when the attempt ends on its own; a worker killed mid-attempt (cancel,
deadline, crash) cannot. So each worker gets a private directory as its ``TMPDIR``, and the
pool removes that directory once the worker is dead; what a killed service left is swept at
the next start.

A directory is named after the process that made it (``<pid>-<random>``), so a root that
several processes share (the API pods' ``/tmp`` on one host) is swept of dead processes'
directories only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def worker_directory(root: Path) -> Path:
    """A new private directory under ``root`` for one worker of this process."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def sweep(root: Path, *, shared: bool) -> None:
    """Removes what workers left under ``root``: everything, or with ``shared`` (other
    processes may use the root) the directories of processes no longer running, and of this
    one, which has started no worker yet."""
    if not shared:
        remove(root)
        return
    with contextlib.suppress(FileNotFoundError):
        for directory in root.iterdir():
            owner = directory.name.split("-", 1)[0]
            if not owner.isdigit() or int(owner) == os.getpid() or not _running(int(owner)):
                remove(directory)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
