"""Stand-ins for trained docTR weights: randomly initialised models saved as weight files.

docTR's trained weights come from a hub this machine cannot reach, and the tests measure
the engine's plumbing (loading from the weights setting, batching, result shape, boxes),
not recognition accuracy. Random weights still run every layer, so they cost what trained
ones cost.
"""

from __future__ import annotations

from pathlib import Path

DETECTION_ARCH = "db_mobilenet_v3_large"
RECOGNITION_ARCH = "crnn_mobilenet_v3_small"
"""docTR's smallest pair: cheap enough for a shared 2-core test machine."""


def save_stand_in_weights(
    directory: Path, detection_arch: str = DETECTION_ARCH, recognition_arch: str = RECOGNITION_ARCH
) -> Path:
    """``<arch>.pt`` for both architectures in ``directory``, as ``models fetch`` leaves them."""
    import torch
    from doctr.models import detection, recognition

    torch.manual_seed(0)
    directory.mkdir(parents=True, exist_ok=True)
    for module, arch in ((detection, detection_arch), (recognition, recognition_arch)):
        model = module.__dict__[arch](pretrained=False, pretrained_backbone=False)
        torch.save(model.state_dict(), directory / f"{arch}.pt")
    return directory


def doctr_env(directory: Path) -> dict[str, str]:
    """Settings (as environment variables) that point docTR at ``directory``."""
    return {
        "DOCJOBS_DOCTR__WEIGHTS_DIR": str(directory),
        "DOCJOBS_DOCTR__DETECTION_ARCH": DETECTION_ARCH,
        "DOCJOBS_DOCTR__RECOGNITION_ARCH": RECOGNITION_ARCH,
    }
