"""``docjobs runner``: one attempt by the runner contract, or a warm worker serving many.

One-shot (Kubernetes Jobs): the job spec comes from ``DOCJOBS_JOB_SPEC`` (JSON) and the
attempt from ``DOCJOBS_ATTEMPT``; the summary goes to the termination-message path and the
exit code says how it ended (0 done, 42 permanent, other transient).

Worker (embedded mode and the sync path): JSON lines in on stdin (:class:`WorkerRequest`),
one :class:`RunOutcome` line out per request on stdout.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import sys
from pathlib import Path

from docjobs.config import get_settings
from docjobs.domain.models import JobSpec, RunOutcome, WorkerRequest
from docjobs.runner.execute import execute, termination_message
from docjobs.storage.factory import store_from_settings

_PR_SET_PDEATHSIG = 1


def run_once() -> int:
    spec = JobSpec.model_validate_json(os.environ["DOCJOBS_JOB_SPEC"])
    attempt = int(os.environ.get("DOCJOBS_ATTEMPT", "1"))
    outcome = execute(spec, attempt, store_from_settings(get_settings()))
    path = Path(os.environ.get("DOCJOBS_TERMINATION_LOG", "/dev/termination-log"))
    try:
        path.write_text(termination_message(outcome))
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot write termination message: %s", exc)
    print(termination_message(outcome), file=sys.stderr)
    return outcome.exit_code


def serve_worker() -> int:
    _die_with_parent()
    _limit_memory(get_settings().runner.memory_limit_mb)
    # Engines and the libraries under them may print; only protocol lines may reach stdout.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    store = store_from_settings(get_settings())
    for line in sys.stdin:
        if not line.strip():
            continue
        request = WorkerRequest.model_validate_json(line)
        outcome: RunOutcome = execute(request.spec, request.attempt, store)
        protocol.write(outcome.model_dump_json() + "\n")
    return 0


def _die_with_parent() -> None:
    """A worker must not outlive its supervisor, even one killed with SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        sys.exit(0)


def _limit_memory(megabytes: int) -> None:
    # The data limit counts what a worker allocates (heap, anonymous mappings), not the
    # address space its libraries map: PyTorch's alone maps ~4 GiB it never touches.
    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    args = sys.argv[1:] if argv is None else argv
    return serve_worker() if "--worker" in args else run_once()
