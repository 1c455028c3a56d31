"""What each operation and engine is, wherever it runs: one profile each, read by all.

The API asks an operation's profile which ``limits`` setting bounds a request a caller
waits for; the runner and both schedulers whether a document can be read in parts; the
operator which pool an engine's runner pods go to and how long one of their attempts may
run. The numbers that tune these stay in the settings; a profile says which of them apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeGuard

from docjobs.domain.models import Engine, OcrAdvanced, OcrAuto, OcrSimple, Operation, engine_of


class SyncLimits(Protocol):
    """The settings that bound what a caller may wait for (``LimitSettings``)."""

    @property
    def sync_convert_bytes(self) -> int: ...

    @property
    def sync_tesseract_pages(self) -> int: ...

    @property
    def sync_doctr_pages(self) -> int: ...

    @property
    def sync_vision_pages(self) -> int: ...


class SyncLimit(StrEnum):
    """Which setting bounds a request a caller waits for; the value is the setting's name
    in ``limits`` (``DOCJOBS_LIMITS__<NAME>``)."""

    CONVERT_BYTES = "sync_convert_bytes"
    TESSERACT_PAGES = "sync_tesseract_pages"
    DOCTR_PAGES = "sync_doctr_pages"
    VISION_PAGES = "sync_vision_pages"

    @property
    def counts_pages(self) -> bool:
        """Whether the bound is in selected pages (else in bytes of the upload)."""
        return self.value.endswith("_pages")

    def of(self, limits: SyncLimits) -> int:
        """The number ``limits`` sets for this bound."""
        value = getattr(limits, self.value)
        if not isinstance(value, int):
            raise TypeError(f"the {self.value} setting is not a whole number: {value!r}")
        return value


@dataclass(frozen=True)
class OperationProfile:
    """The rules of one operation kind."""

    splittable: bool
    """Its result is the document's pages read one by one, so a document can be read in
    parts at once (warm workers or the shards of an Indexed Job) and the parts merged."""
    sync_limit: SyncLimit | None
    """What bounds a request a caller waits for; ``None``: any document may be waited for."""


@dataclass(frozen=True)
class EnginePlacement:
    """Where an engine's runner pods go and how long one attempt may run there, by
    default: the operator's ``engines`` settings start from these."""

    pool: str
    """The node pool (``pools`` of the operator's settings): ``gpu`` only for docTR."""
    attempt_seconds: int
    """Upper bound of one attempt (the runner Job's ``activeDeadlineSeconds``); a job's
    own ``timeoutSeconds`` may shorten it, never extend it."""


OPERATIONS: Mapping[str, OperationProfile] = {
    "convert": OperationProfile(splittable=False, sync_limit=SyncLimit.CONVERT_BYTES),
    "ocr.simple": OperationProfile(splittable=True, sync_limit=SyncLimit.TESSERACT_PAGES),
    "ocr.advanced": OperationProfile(splittable=True, sync_limit=SyncLimit.DOCTR_PAGES),
    # Vision and extraction run whole: their engines have no reader of a page selection
    # whose pages a merge could put together (the runner's ``engines.read_pages``).
    "ocr.vision": OperationProfile(splittable=False, sync_limit=SyncLimit.VISION_PAGES),
    # Every page costs Tesseract's time; the few re-read by docTR or Claude are what the sync
    # wait (``sync_wait_seconds``) bounds, past which the caller gets the job.
    "ocr.auto": OperationProfile(splittable=True, sync_limit=SyncLimit.TESSERACT_PAGES),
    "extract": OperationProfile(splittable=False, sync_limit=None),
}

CPU_ENGINES: tuple[Engine, ...] = (
    Engine.CONVERT,
    Engine.TESSERACT,
    Engine.VISION,
    Engine.EXTRACT,
    Engine.OFFICE,
)
"""The engines of the shared image, which worker pods claim by default: docTR needs the GPU
image, so only worker pods of that image claim its jobs."""


PLACEMENTS: Mapping[Engine, EnginePlacement] = {
    Engine.CONVERT: EnginePlacement(pool="cpu", attempt_seconds=300),
    Engine.TESSERACT: EnginePlacement(pool="cpu", attempt_seconds=1200),
    Engine.DOCTR: EnginePlacement(pool="gpu", attempt_seconds=1800),
    Engine.VISION: EnginePlacement(pool="cpu", attempt_seconds=900),
    Engine.EXTRACT: EnginePlacement(pool="cpu", attempt_seconds=900),
    # LibreOffice's own wall-clock limit (``office.timeout_seconds``) stops a document first.
    Engine.OFFICE: EnginePlacement(pool="cpu", attempt_seconds=300),
}

PagedOperation = OcrSimple | OcrAdvanced | OcrAuto
"""The operations whose profile says ``splittable``, as a type."""


def profile_of(operation: Operation) -> OperationProfile:
    return OPERATIONS[operation.kind]


def placement_of(operation: Operation) -> EnginePlacement:
    """Where ``operation`` runs: its engine's placement (an extraction that reads its scans
    with docTR goes where docTR goes)."""
    return PLACEMENTS[engine_of(operation)]


def splittable(operation: Operation) -> TypeGuard[PagedOperation]:
    """Whether ``operation`` reads a document page by page, so parts can be merged."""
    return profile_of(operation).splittable
