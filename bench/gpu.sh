#!/usr/bin/env bash
# docTR on CUDA against docTR on the CPU, same 50-page scan, one run; for a machine with an
# NVIDIA GPU. Installs what it needs into .venv-gpu (PyPI, or wheels in $WHEELS when the
# machine is offline), then prints pages/s for both. Meant to finish within 5 minutes.
#   bench/gpu.sh [PAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
PAGES=${1:-50}
VENV=${VENV:-.venv-gpu}
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if ! "$VENV/bin/python" -c "import doctr, torch" 2>/dev/null; then
  python3 -m venv "$VENV"
  if [[ -n ${WHEELS:-} ]]; then
    "$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" -e ".[doctr,dev]"
  else
    "$VENV/bin/pip" install -q -e ".[doctr,dev]"
  fi
fi
"$VENV/bin/python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
# docTR's defaults (the GPU image's architectures); every CPU core for the CPU run.
exec timeout 240 "$VENV/bin/python" bench/ocr_tiers.py --pages "$PAGES" --devices cuda,cpu \
  --threads 0 --no-tesseract --detection db_resnet50 --recognition crnn_vgg16_bn
