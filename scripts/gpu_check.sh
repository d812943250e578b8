#!/usr/bin/env bash
# The GPU check of issue #23: one script, at most about 8 minutes, on a machine whose torch
# sees a GPU (nothing is downloaded).  Run it from the repository root:
#
#     bash scripts/gpu_check.sh [OUT]      # OUT defaults to $OUT, else ./gpu-check
#
# Steps (each under its own time limit, so one slow step cannot eat the others' time):
#   1. install the project (pip install --no-deps --no-build-isolation .), check torch sees the GPU
#   2. python -m cmhbench.tools.perf train on the GPU (ours against the authors'-style loop)    ≤ 110 s
#   3. the CPU-vs-GPU agreement test (6 deep methods × 3 seeds, quick preset)             ≤ 120 s
#   4. python -m cmhbench.tools.perf gpu: the MIRFlickr-shaped paper-preset grid of the six deep
#      methods × 4 bits at 5% of their epochs, with --cells-per-gpu 1 and 8                ≤ 260 s
# Everything printed is also written under OUT (perf-train.txt, agreement.txt, gpu-check.md).
set -uo pipefail
OUT="${1:-${OUT:-gpu-check}}"
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
step() { echo "== $(date -u +%H:%M:%S) $*"; }

step "install"
pip install --no-deps --no-build-isolation -q . || { echo "install failed"; exit 2; }

step "torch and the GPU"
python - <<'PY' || exit 2
import sys
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}")
if not torch.cuda.is_available():
    sys.exit("torch sees no GPU: nothing to check")
print(f"GPU 0: {torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU(s)")
PY
nvidia-smi --query-gpu=name,memory.total,memory.used,utilization.gpu --format=csv || true

step "perf train on the GPU (the CPU table is in README)"
timeout 110 python -m cmhbench.tools.perf train --device cuda --rows 512 --epochs 2 2>&1 | tee "$OUT/perf-train.txt"

step "CPU against GPU"
timeout 120 python -m pytest -q -p no:cacheprovider tests/methods/test_gpu_agreement.py 2>&1 | tee "$OUT/agreement.txt"

step "paper-preset grid at MIRFlickr size, 1 and 8 cells per GPU"
python -m cmhbench.tools.perf gpu --out "$OUT" --k 8 --fraction 0.05 --timeout-one 150 --timeout-k 100 2>&1 \
    | tee "$OUT/gpu-grid.txt"
step "done: $OUT"
