"""A LibreOffice kept running, converting one document after another over UNO.

Run by the system's Python, the one LibreOffice's ``uno`` module is built for (Debian's
``python3-uno``), never imported by docjobs: ``python3 office_bridge.py CONFIG_JSON``. It
starts ``soffice.bin`` listening on a pipe of its own, connects, writes one ``ready`` line
with LibreOffice's pid, then answers each request line on stdin with one line on stdout:

    {"source": PATH, "target": PATH, "filter": NAME, "options": {NAME: {"type", "value"}},
     "cpu_seconds": N}
    {"ok": true} | {"ok": false, "error": "..."}

Documents load hidden and read-only, with macros never executed (whatever the profile
says) and links never updated. The engine that started this process enforces the deadline
and kills the process tree past it; LibreOffice dies with this process (its parent-death
signal), and this process with the engine's worker, so nothing outlives a killed worker.
Before each document LibreOffice's soft CPU limit moves to what it has used plus the
request's ``cpu_seconds``: a spinning conversion is stopped even if nobody is left to kill
it. On end of input, LibreOffice is closed and the process exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from typing import Any

import uno  # type: ignore[import-not-found]

_PR_SET_PDEATHSIG = 1
_RESTART_EXIT = 81
"""``soffice.bin``'s exit code for "start me again": it asks once, after making a profile."""
_NEVER_EXECUTE = 0  # com.sun.star.document.MacroExecMode.NEVER_EXECUTE
_NO_UPDATE = 0  # com.sun.star.document.UpdateDocMode.NO_UPDATE
_CONNECT_PAUSE = 0.05


def main() -> int:
    config = json.loads(sys.argv[1])
    _die_with(config["parent"])
    office, context = _connect(_start(config), config)
    desktop = context.ServiceManager.createInstanceWithContext(
        "com.sun.star.frame.Desktop", context
    )
    _answer({"ready": True, "pid": office.pid})
    for line in sys.stdin:
        if line.strip():
            _answer(_convert(desktop, office.pid, json.loads(line)))
    with contextlib.suppress(Exception):  # gone or stuck: killed below either way
        desktop.terminate()
        office.wait(timeout=10)
    office.kill()
    return 0


def _die_with(parent: int) -> None:
    """A parent-death signal, so that this process never outlives the worker that runs it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        sys.exit(1)


def _start(config: dict[str, Any]) -> subprocess.Popen[bytes]:
    output_limit = int(config["max_output_bytes"])
    cpu_seconds = int(config["cpu_seconds"])

    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork: no lock taken after

    def limited() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = cpu_seconds if hard == resource.RLIM_INFINITY else min(cpu_seconds, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        resource.setrlimit(resource.RLIMIT_FSIZE, (output_limit, output_limit))

    command = [
        config["soffice"],
        "--headless",
        "--invisible",
        "--norestore",
        "--nolockcheck",
        "--nodefault",
        "--nologo",
        f"-env:UserInstallation={config['profile']}",
        f"--accept=pipe,name={config['pipe']};urp;",
    ]
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr,
        stderr=sys.stderr,
        preexec_fn=limited,  # system calls only, safe beside UNO's threads
    )


def _connect(
    office: subprocess.Popen[bytes], config: dict[str, Any]
) -> tuple[subprocess.Popen[bytes], Any]:
    """The office and its component context, once it listens; a first start that made the
    profile asks to be started again, as ``soffice``'s launcher would."""
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext(
        "com.sun.star.bridge.UnoUrlResolver", local
    )
    no_connection = uno.getClass("com.sun.star.connection.NoConnectException")
    url = f"uno:pipe,name={config['pipe']};urp;StarOffice.ComponentContext"
    while True:
        try:
            return office, resolver.resolve(url)
        except no_connection:
            returncode = office.poll()
            if returncode == _RESTART_EXIT:
                office = _start(config)
            elif returncode is not None:
                _answer({"ready": False, "error": f"LibreOffice exited with {returncode}"})
                sys.exit(1)
            time.sleep(_CONNECT_PAUSE)


def _convert(desktop: Any, office_pid: int, request: dict[str, Any]) -> dict[str, Any]:
    _limit_cpu(office_pid, int(request["cpu_seconds"]))
    loaded = (
        _property("Hidden", True),
        _property("ReadOnly", True),
        _property("MacroExecutionMode", _NEVER_EXECUTE),
        _property("UpdateDocMode", _NO_UPDATE),
    )
    try:
        document = desktop.loadComponentFromURL(
            uno.systemPathToFileUrl(request["source"]), "_blank", 0, loaded
        )
    except Exception as exc:  # any UNO failure is this document's
        return {"ok": False, "error": f"load: {type(exc).__name__}: {exc}"}
    if document is None:
        return {"ok": False, "error": "load: LibreOffice opened nothing"}
    try:
        filter_data = uno.Any(
            "[]com.sun.star.beans.PropertyValue",
            tuple(_property(name, _typed(value)) for name, value in request["options"].items()),
        )
        stored = (_property("FilterName", request["filter"]), _property("FilterData", filter_data))
        uno.invoke(document, "storeToURL", (uno.systemPathToFileUrl(request["target"]), stored))
    except Exception as exc:
        return {"ok": False, "error": f"export: {type(exc).__name__}: {exc}"}
    finally:
        with contextlib.suppress(Exception):  # one that will not close is left to the restart
            document.close(True)
    return {"ok": True}


def _limit_cpu(pid: int, seconds: int) -> None:
    """LibreOffice's soft CPU limit: what it has used so far plus ``seconds``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    _, hard = resource.prlimit(pid, resource.RLIMIT_CPU)
    soft = int(used) + 1 + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.prlimit(pid, resource.RLIMIT_CPU, (soft, hard))


def _typed(option: dict[str, str]) -> Any:
    """A filter option as ``--convert-to``'s JSON gives it, as the UNO value it stands for."""
    kind, value = option["type"], option["value"]
    if kind == "boolean":
        return value == "true"
    if kind == "long":
        return int(value)
    return value


def _property(name: str, value: Any) -> Any:
    prop = uno.createUnoStruct("com.sun.star.beans.PropertyValue")
    prop.Name = name
    prop.Value = value
    return prop


def _answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
