"""What runner pods leave in the object store for the operator: an attempt's outcome and
its pages read.

Runner pods cannot write the DocumentJob, so they store these objects through the URLs of
their manifest. The outcome is the runner's own word on how its attempt ended and wins over
every other signal about it; the progress is shown in the status while the attempt runs.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from docjobs.domain.models import JobSpec, Progress, RunOutcome
from docjobs.storage.base import ObjectNotFound, kept_parts_cpu, outcome_key
from docjobs.storage.presigned import SigningStore

from .agenda import Ref

log = logging.getLogger(__name__)


class StoreUnreachable(Exception):
    """The object store did not answer: the step is tried again shortly, never dropped."""


class StoredSignals:
    def __init__(self, store: SigningStore | None) -> None:
        self.store = store

    def outcome(self, spec: JobSpec, attempt: int) -> RunOutcome | None:
        """The outcome ``attempt``'s runner stored; ``None`` when none (yet).

        Raises :class:`StoreUnreachable` when the store does not answer: nothing can be
        concluded then, neither that the work was done nor that it was not."""
        if self.store is None:
            return None
        key = outcome_key(spec.tenant, spec.job_id, attempt)
        try:
            return RunOutcome.model_validate_json(b"".join(self.store.iter_chunks(key)))
        except (ObjectNotFound, ValidationError):
            return None
        except Exception as exc:  # connection refused, timeouts, 5xx: nothing to conclude
            raise StoreUnreachable(f"object store unreachable reading {key}: {exc}") from exc

    def shards_cpu(self, spec: JobSpec, attempt: int, shards: int) -> float:
        """The CPU seconds the shards of ``attempt`` that succeeded kept for its merge; none
        where the store does not answer (the attempt ends all the same, unbilled)."""
        if self.store is None or shards <= 0:
            return 0.0
        try:
            return kept_parts_cpu(self.store, spec.tenant, spec.job_id, attempt, range(shards))
        except Exception as exc:
            log.info("%s: shards' CPU time unreadable: %s", spec.job_id, exc)
            return 0.0

    def progress(self, ref: Ref, key: str) -> Progress | None:
        """The progress a runner stored at ``key``; ``None`` when none (yet) or unreadable."""
        if self.store is None:
            return None
        try:
            return Progress.model_validate_json(b"".join(self.store.iter_chunks(key)))
        except ObjectNotFound:  # the runner has not opened the document yet
            return None
        except ValidationError as exc:
            log.warning("%s: stored progress at %s unreadable: %s", ref, key, exc)
            return None
        except Exception as exc:  # the object store is down: the outcome check reports it
            log.info("%s: object store unreachable reading %s: %s", ref, key, exc)
            return None
