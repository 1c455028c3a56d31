"""Advanced OCR with docTR (PyTorch): a detection model finds words, a recognition model
reads them.

The predictor is built once per runner process, from weight files only (see
:mod:`docjobs.runner.weights`): models are constructed untrained and without pretrained
backbones, so nothing reaches for a model hub. Pages go through in batches of
``doctr.page_batch_size``, on CUDA when the process sees a GPU.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from docjobs.config import DoctrSettings, get_settings
from docjobs.domain.models import OcrAdvanced
from docjobs.runner import weights
from docjobs.runner.engines import (
    EngineOutput,
    PageCount,
    PageProgress,
    PermanentError,
    ocr_output,
    raster,
)

if TYPE_CHECKING:
    from doctr.io import Document
    from doctr.models.predictor import OCRPredictor
    from PIL import Image

_predictors: dict[tuple[Any, ...], OCRPredictor] = {}
"""Built predictors by what they were built from; a runner process normally holds one."""


def extract(
    operation: OcrAdvanced,
    source: Path,
    content_type: str,
    workdir: Path,
    progress: PageProgress | None = None,
) -> EngineOutput:
    pages = read_pages(operation, source, content_type, progress)
    return ocr_output.finish(operation, pages, source, content_type, workdir)


def read_pages(
    operation: OcrAdvanced, source: Path, content_type: str, progress: PageProgress | None = None
) -> Iterator[dict[str, Any]]:
    """Each selected page's result, a batch at a time."""
    settings = get_settings()
    predictor = _configured_predictor()
    detailed = operation.output != "simple"
    count = PageCount(progress)
    selected = raster.iter_pages(source, content_type, operation.pages, count.selected)
    for batch in _batches(selected, settings.doctr.page_batch_size):
        views = _read(predictor, batch, [detailed] * len(batch))
        count.read(len(batch))
        yield from views


def read_batch(pages: Sequence[raster.Page], detailed: Sequence[bool]) -> list[dict[str, Any]]:
    """One forward pass over ``pages``, which may come from several documents: each page's
    view, ``detailed[i]`` for ``pages[i]``."""
    return _read(_configured_predictor(), pages, detailed)


def _read(
    predictor: OCRPredictor, pages: Sequence[raster.Page], detailed: Sequence[bool]
) -> list[dict[str, Any]]:
    document: Document = predictor([np.asarray(page.image.convert("RGB")) for page in pages])
    return [
        _page_view(page, read, details)
        for page, read, details in zip(pages, document.pages, detailed, strict=True)
    ]


def read_words(image: Image.Image) -> list[ocr_output.Word]:
    """The words of one page image, in its pixels, in reading order (for extraction)."""
    document: Document = _configured_predictor()([np.asarray(image.convert("RGB"))])
    width, height = image.size
    [read] = document.pages
    return [
        _word(word, width, height)
        for block in read.blocks
        for line in block.lines
        for word in line.words
    ]


def _configured_predictor() -> OCRPredictor:
    settings = get_settings()
    return predictor_for(settings.doctr, settings.doctr.weights_directory(settings.data_dir))


def predictor_for(config: DoctrSettings, directory: Path) -> OCRPredictor:
    """The process's predictor for ``config``, built on first use."""
    key = (config.model_dump_json(), str(directory))
    if key not in _predictors:
        _predictors[key] = _build(config, directory)
    return _predictors[key]


def device_of(config: DoctrSettings) -> str:
    import torch

    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return config.device


def _build(config: DoctrSettings, directory: Path) -> OCRPredictor:
    import torch
    from doctr.models import detection, ocr_predictor, recognition
    from doctr.models.detection.fast import reparameterize
    from doctr.models.detection.zoo import ARCHS as DETECTION_ARCHS
    from doctr.models.recognition.zoo import ARCHS as RECOGNITION_ARCHS

    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    for arch, known, setting in (
        (config.detection_arch, DETECTION_ARCHS, "DETECTION_ARCH"),
        (config.recognition_arch, RECOGNITION_ARCHS, "RECOGNITION_ARCH"),
    ):
        if arch not in known:
            raise PermanentError(
                "ModelNotConfigured",
                f"docTR has no architecture {arch!r} (DOCJOBS_DOCTR__{setting}); "
                f"choose one of {', '.join(known)}.",
            )
    detector = detection.__dict__[config.detection_arch](
        pretrained=False, pretrained_backbone=False
    )
    recogniser = recognition.__dict__[config.recognition_arch](
        pretrained=False, pretrained_backbone=False
    )
    _load(detector, config.detection_arch, config, directory)
    _load(recogniser, config.recognition_arch, config, directory)
    if isinstance(detector, detection.FAST):
        detector = reparameterize(detector)  # what docTR's own zoo does: faster inference
    predictor = ocr_predictor(
        detector,
        recogniser,
        pretrained=False,
        assume_straight_pages=True,  # else docTR adds orientation models, fetched from a hub
        det_bs=config.page_batch_size,
        reco_bs=config.word_batch_size,
    )
    return predictor.to(torch.device(device_of(config))).eval()


def _load(model: Any, arch: str, config: DoctrSettings, directory: Path) -> None:
    import torch

    path = weights.find(directory, arch)
    if path is None and config.weights_prefix:
        from docjobs.storage.factory import store_from_settings

        store = store_from_settings(get_settings())
        path = weights.copy_from_store(store, config.weights_prefix, arch, directory)
    if path is None:
        raise PermanentError(
            "ModelWeightsMissing",
            f"No docTR weights for {arch!r} in {directory}. `docjobs models fetch` puts the"
            " default pair there (`--url`/`--sha256` for a mirror); set"
            " DOCJOBS_DOCTR__WEIGHTS_DIR to that directory (or DOCJOBS_DOCTR__WEIGHTS_PREFIX"
            " to an object-store prefix holding them).",
        )
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        # torch reports mismatching tensors as RuntimeError, a file that is no state dict
        # as UnpicklingError.
        raise PermanentError(
            "ModelWeightsInvalid",
            f"{path} does not hold {arch} weights: {str(exc).splitlines()[0][:300]}",
        ) from None


def _batches(pages: Iterable[raster.Page], size: int) -> Iterator[list[raster.Page]]:
    iterator = iter(pages)
    while batch := list(islice(iterator, size)):
        yield batch


def _page_view(page: raster.Page, read: Any, detailed: bool) -> dict[str, Any]:
    width, height = page.image.size
    blocks = [
        [[_word(word, width, height) for word in line.words] for line in block.lines]
        for block in read.blocks
    ]
    return ocr_output.page_view(page.number, (width, height), blocks, detailed)


def _word(word: Any, width: int, height: int) -> ocr_output.Word:
    (x_min, y_min), (x_max, y_max) = word.geometry  # relative to the page, 0-1
    left, right = (round(min(max(v, 0.0), 1.0) * width) for v in (x_min, x_max))
    top, bottom = (round(min(max(v, 0.0), 1.0) * height) for v in (y_min, y_max))
    return ocr_output.Word(
        text=str(word.value),
        confidence=round(float(word.confidence) * 100, 2),
        x=left,
        y=top,
        width=right - left,
        height=bottom - top,
    )
