#!/usr/bin/env bash
# docTR on CUDA against docTR on the CPU, same 50-page scan, then eight one-page documents
# in one batch against one process each (bench/doctr_batch.py); one run, for a machine with
# an NVIDIA GPU. Installs what it needs into .venv-gpu (PyPI, or wheels in $WHEELS when the
# machine is offline), then prints pages/s for both. Meant to finish within 8 minutes.
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
timeout 240 "$VENV/bin/python" bench/ocr_tiers.py --pages "$PAGES" --devices cuda,cpu \
  --threads 0 --no-tesseract --detection db_resnet50 --recognition crnn_vgg16_bn

# Eight one-page documents on the GPU: one batch in one process against one process per
# document (a pod each) and one warm process reading them one after another. The GPU's
# utilisation is sampled meanwhile (every 200 ms; the mean over the whole run).
utilisation=$(mktemp)
nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits -lms 200 >"$utilisation" &
sampler=$!
timeout 240 "$VENV/bin/python" bench/doctr_batch.py --documents 8 --device cuda --threads 0
kill "$sampler" 2>/dev/null || true
awk '{ sum += $1; n += 1 } END { if (n) printf "GPU utilisation during the batch bench: mean %.0f %% over %d samples\n", sum / n, n }' "$utilisation"
rm -f "$utilisation"
