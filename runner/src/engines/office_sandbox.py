"""What the worker's LibreOffice runs in: its profile, no network, and its pipes.

LibreOffice keeps its settings in a user profile; the worker's is its own, in its own
``TMPDIR``, written before the first start with macros off (security level 3: only signed
macros from trusted sources, and there are none; execution disabled) and linked content
blocked, links never updated. LibreOffice initialises the rest on its first start, and the
profile is written again whenever those items are missing (a profile LibreOffice was
killed while writing is removed, then made again).

LibreOffice listens on pipes (its own single-instance pipe, and the one the bridge speaks
through), files in ``/tmp`` that a killed LibreOffice leaves behind: the engine removes
those of a LibreOffice it kills, and those of workers that are gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

PIPE_DIR = Path("/tmp")  # noqa: S108 - where LibreOffice's pipes are, whatever TMPDIR says
PIPE_PREFIX = "docjobs-"
"""Then the worker's pid: a pipe whose worker is gone was left by a LibreOffice killed with
it."""

_PROFILE_SETTINGS = {
    # (path, property): value. Macros never run, linked content is never fetched.
    ("/org.openoffice.Office.Common/Security/Scripting", "MacroSecurityLevel"): "3",
    ("/org.openoffice.Office.Common/Security/Scripting", "DisableMacrosExecution"): "true",
    ("/org.openoffice.Office.Common/Security/Scripting", "BlockUntrustedRefererLinks"): "true",
    # Writer: 0 never updates links; Calc: 1 never does.
    ("/org.openoffice.Office.Writer/Content/Update", "Link"): "0",
    ("/org.openoffice.Office.Calc/Content/Update", "Link"): "1",
}


def profile_dir() -> Path:
    """This worker's LibreOffice profile: in the worker's own ``TMPDIR`` (an attempt's
    scratch directory is gone when the attempt ends), one per process."""
    return Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / f"docjobs-office-{os.getpid()}"


def log_path() -> Path:
    """What the bridge and LibreOffice said, since the last start."""
    return profile_dir().with_name(profile_dir().name + ".log")


def make_profile() -> Path:
    """The worker's profile, made with the safe settings where it is missing or changed."""
    profile = profile_dir()
    settings_file = profile / "user" / "registrymodifications.xcu"
    try:
        current = settings_file.read_text(encoding="utf-8")
    except OSError:
        current = ""
    if not all(
        _item(path, name, value) in current for (path, name), value in _PROFILE_SETTINGS.items()
    ):
        shutil.rmtree(profile, ignore_errors=True)
        settings_file.parent.mkdir(parents=True)
        items = "\n".join(
            _item(path, name, value) for (path, name), value in _PROFILE_SETTINGS.items()
        )
        settings_file.write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<oor:items xmlns:oor="http://openoffice.org/2001/registry"'
            ' xmlns:xs="http://www.w3.org/2001/XMLSchema"'
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            f"{items}\n</oor:items>\n",
            encoding="utf-8",
        )
    return profile


def _item(path: str, name: str, value: str) -> str:
    # LibreOffice writes its items back one per line in this form, so a check by text holds.
    return (
        f'<item oor:path="{path}"><prop oor:name="{name}" oor:op="fuse">'
        f"<value>{value}</value></prop></item>"
    )


@cache
def no_network() -> list[str]:
    """``unshare`` into a network namespace of its own, where this process may make one."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    command = [unshare, "--net", "--map-root-user", "--"]
    try:
        probe = subprocess.run([*command, "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if probe.returncode != 0:
        log.info("LibreOffice runs with the network: unshare is refused here")
        return []
    return command


def sweep_pipes() -> None:
    """Removes the pipes of LibreOffices killed with their worker (the pool's kill leaves
    them no time to remove theirs)."""
    for pipe in PIPE_DIR.glob(f"OSL_PIPE_*_{PIPE_PREFIX}*"):
        worker = pipe.name.split(PIPE_PREFIX, 1)[1].split("-", 1)[0]
        if worker.isdigit() and not psutil.pid_exists(int(worker)):
            with contextlib.suppress(OSError):
                pipe.unlink()


def pipes_of(tree: list[psutil.Process]) -> set[Path]:
    """The pipes LibreOffice listens on (its own and the one ``--accept`` asked for): a
    killed LibreOffice leaves their files behind."""
    found: set[Path] = set()
    for member in tree:
        with contextlib.suppress(psutil.Error, AttributeError):  # AttributeError: psutil < 6
            for connection in member.net_connections(kind="unix"):
                path = connection.laddr
                if isinstance(path, str) and path.startswith(f"{PIPE_DIR}/OSL_PIPE_"):
                    found.add(Path(path))
    return found
