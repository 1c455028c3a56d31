"""What this installation can do: each OCR tier and the LLM extraction engine, available or
not, with the reason and the fix, known before any work starts.

The checks only look: the docTR extra is found with ``importlib.util.find_spec`` (importing
PyTorch would cost the API process a gigabyte), weights by their file names, Claude by its
key, Tesseract by its binary and installed languages. In kubernetes mode the runner pods'
images and Secrets do the work, which the API process cannot see: the tiers are reported
available there, and a missing part fails the job naming it.
"""

from __future__ import annotations

import importlib.util
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from docjobs.config import Settings
from docjobs.languages import installed_tesseract_languages
from docjobs.storage.base import ObjectStore, weights_key
from docjobs.storage.factory import store_from_settings

TierName = Literal["simple", "advanced", "vision", "auto", "llm"]
TIER_NAMES: tuple[TierName, ...] = ("simple", "advanced", "vision", "auto", "llm")
WEIGHTS_SUFFIX = ".pt"
DOCTR_EXTRA_MODULES = ("doctr", "torch")
CLAUDE_KEY_FIX = (
    "set DOCJOBS_LLM__API_KEY (and DOCJOBS_LLM__BASE_URL for a gateway), then restart the server"
)

_TITLES: Mapping[TierName, str] = {
    "simple": "Simple OCR (Tesseract)",
    "advanced": "Advanced OCR (docTR)",
    "vision": "Vision OCR (Claude)",
    "auto": "Auto OCR (Tesseract, then docTR or Claude for weak pages)",
    "llm": "LLM extraction (Claude)",
}


@dataclass(frozen=True)
class Tier:
    name: TierName
    available: bool
    reason: str
    """Why it is available, or why not."""
    fix: str | None = None
    """How to make it available; ``None`` when it is."""

    @property
    def title(self) -> str:
        return _TITLES[self.name]

    def refusal(self) -> str:
        """The message of a request refused because this tier is not available."""
        return (
            f"{self.title} is not available on this server: {self.reason}. "
            f"To enable it: {self.fix}."
        )

    def summary(self) -> str:
        """``available``, or ``unavailable: <reason>``, as ``/readyz`` and the banner show it."""
        return "available" if self.available else f"unavailable: {self.reason}"


@dataclass(frozen=True)
class Capabilities:
    tiers: Mapping[TierName, Tier]
    languages: tuple[str, ...]
    """Tesseract's installed recognition languages, sorted."""

    def tier(self, name: TierName) -> Tier:
        return self.tiers[name]


def find_weights(directory: Path, arch: str) -> Path | None:
    """``<arch>.pt``, else the newest of docTR's release names ``<arch>-<hash>.pt``."""
    exact = directory / f"{arch}{WEIGHTS_SUFFIX}"
    if exact.is_file():
        return exact
    released = sorted(directory.glob(f"{arch}-*{WEIGHTS_SUFFIX}"), key=lambda p: p.stat().st_mtime)
    return released[-1] if released else None


def check(settings: Settings, store: ObjectStore | None = None) -> Capabilities:
    """Every tier as ``settings`` leave it; ``store`` is asked for weights under
    ``doctr.weights_prefix`` (blocking: call it off the event loop)."""
    languages = tuple(sorted(installed_tesseract_languages()))
    if settings.backend == "kubernetes":
        on_pods = "runs on the runner pods, which report what they lack in the job's error"
        tiers = {name: Tier(name, True, on_pods) for name in TIER_NAMES}
        return Capabilities(tiers, languages)
    simple = _simple(languages)
    advanced = _advanced(settings, store)
    vision = _claude("vision", settings)
    tiers = {
        "simple": simple,
        "advanced": advanced,
        "vision": vision,
        "auto": _auto(simple, advanced, vision),
        "llm": _claude("llm", settings),
    }
    return Capabilities(tiers, languages)


def _simple(languages: tuple[str, ...]) -> Tier:
    fix = "install Tesseract and its language data (make setup, or apt-get install tesseract-ocr)"
    if shutil.which("tesseract") is None:
        return Tier("simple", False, "the tesseract program is not on PATH", fix)
    if not languages:
        return Tier("simple", False, "Tesseract has no recognition language installed", fix)
    return Tier("simple", True, f"Tesseract with {len(languages)} languages")


def doctr_extra_installed() -> bool:
    return all(importlib.util.find_spec(module) is not None for module in DOCTR_EXTRA_MODULES)


def _advanced(settings: Settings, store: ObjectStore | None) -> Tier:
    config = settings.doctr
    directory = config.weights_directory(settings.data_dir)
    fetch = f"docjobs models fetch --dir {directory}"
    if not doctr_extra_installed():
        return Tier(
            "advanced",
            False,
            "the doctr extra (python-doctr, torch) is not installed",
            f"make setup EXTRAS=doctr, then {fetch}",
        )
    archs = (config.detection_arch, config.recognition_arch)
    missing = [arch for arch in archs if not _weights_present(directory, arch, settings, store)]
    if missing:
        where = f"{directory}" + (
            f" or under the object-store prefix {config.weights_prefix!r}"
            if config.weights_prefix
            else ""
        )
        return Tier(
            "advanced",
            False,
            f"no docTR weights for {' and '.join(missing)} in {where}",
            f"{fetch} (or point DOCJOBS_DOCTR__WEIGHTS_DIR at a directory holding them)",
        )
    return Tier("advanced", True, f"docTR with {' and '.join(archs)} from {directory}")


def _weights_present(
    directory: Path, arch: str, settings: Settings, store: ObjectStore | None
) -> bool:
    if find_weights(directory, arch) is not None:
        return True
    prefix = settings.doctr.weights_prefix
    if not prefix or store is None:
        return False
    try:
        return store.exists(weights_key(prefix, arch))
    except Exception:  # an object store that does not answer holds no usable weights now
        return False


def _auto(simple: Tier, advanced: Tier, vision: Tier) -> Tier:
    """Tesseract is all the tier needs; the stronger tiers it has are what it re-reads with."""
    if not simple.available:
        return Tier("auto", False, simple.reason, simple.fix)
    stronger = [name for name, tier in (("docTR", advanced), ("Claude", vision)) if tier.available]
    if not stronger:
        return Tier("auto", True, "Tesseract alone: neither docTR nor Claude is available here")
    return Tier("auto", True, f"Tesseract, weak pages read again by {' then '.join(stronger)}")


def _claude(name: Literal["vision", "llm"], settings: Settings) -> Tier:
    # The runner refuses to call Claude without a key, even through a gateway (base_url).
    if not settings.llm.api_key:
        return Tier(name, False, "no Claude API key is configured", CLAUDE_KEY_FIX)
    through = f" through {settings.llm.base_url}" if settings.llm.base_url else ""
    return Tier(name, True, f"Claude {settings.llm.model}{through}")


@dataclass
class CapabilityCache:
    """The latest :func:`check`, redone once it is ``max_age_seconds`` old, so weights
    fetched or removed while the server runs count without a restart. ``store``: where
    ``doctr.weights_prefix`` is looked up; by default the one the settings choose."""

    settings: Settings
    store: ObjectStore | None = None
    max_age_seconds: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _latest: tuple[float, Capabilities] | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def fresh(self) -> Capabilities | None:
        """The latest check while it is young enough; never blocks."""
        latest = self._latest
        if latest is None or self.clock() - latest[0] > self.max_age_seconds:
            return None
        return latest[1]

    def refresh(self) -> Capabilities:
        """Checks again (blocking: a subprocess the first time, file system, object store)."""
        with self._lock:
            if (young := self.fresh()) is not None:
                return young
            embedded = self.settings.backend == "embedded"
            if self.store is None and embedded and self.settings.doctr.weights_prefix:
                self.store = store_from_settings(self.settings)
            found = check(self.settings, self.store)
            self._latest = (self.clock(), found)
            return found


def banner(capabilities: Capabilities) -> list[str]:
    """One line per tier, for ``docjobs serve`` to print at start."""
    lines = []
    for tier in capabilities.tiers.values():
        if tier.available:
            lines.append(f"  {tier.title}: available ({tier.reason})")
        else:
            lines.append(f"  {tier.title}: UNAVAILABLE, {tier.reason}; to enable: {tier.fix}")
    return ["Tiers:", *lines]
